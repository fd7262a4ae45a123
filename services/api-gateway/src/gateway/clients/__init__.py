"""Clients: their rules, SQL, commands, bulk import (streamed or as a job) and endpoints."""
