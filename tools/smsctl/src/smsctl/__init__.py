"""smsctl: a command line client of the SMS platform's REST API."""

from smsctl.client import ApiError, Client, Counters, ImportJob, ImportResult

__all__ = ["ApiError", "Client", "Counters", "ImportJob", "ImportResult"]
