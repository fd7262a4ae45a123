"""Mailings: their rules and lifecycle, SQL, commands, forecast and endpoints."""
