"""API gateway: the REST API whose writes are commands appended to the event store."""

from gateway.api import create_app
from gateway.config import Settings

__all__ = ["Settings", "create_app"]
