"""FastAPI dependencies the routers share: the pool, the reporter's client, the settings' caps."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from gateway.config import Settings
from gateway.stats.reporter_client import ReporterClient

__all__ = ["Pool", "Reporter", "get_pool", "get_reporter", "max_segments"]


def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]


def get_reporter(request: Request) -> ReporterClient:
    reporter: ReporterClient = request.app.state.reporter
    return reporter


Reporter = Annotated[ReporterClient, Depends(get_reporter)]


def max_segments(request: Request) -> int:
    """The cap on a mailing text's SMS segments (``MAILING_MAX_SEGMENTS``; 0: none)."""
    settings: Settings = request.app.state.settings
    return settings.mailing_max_segments
