"""One command's transaction, as every aggregate's commands run it: retried in a new
transaction after a version conflict, with the caller's guard (an Idempotency-Key's answer)
inside it. Why a retry needs a new transaction is in ``gateway.clients.commands``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import asyncpg

from gateway.errors import ConcurrentModification
from gateway.projection import READ_MODELS
from sms_events.db import Connection
from sms_events.replay import writing
from sms_events.retrying import CONFLICTS, RetryPolicy
from sms_events.store import WrongExpectedVersion, appending

__all__ = ["Guard", "with_retries"]

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

# Conflicts that a fresh attempt of the same command resolves.
_RETRYABLE = (WrongExpectedVersion, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class Guard(Protocol[T_contra]):
    """Work a command's caller does in the command's own transaction: ``before`` ahead of its
    first statement (it must write nothing), ``after`` with its result just before the commit.
    An Idempotency-Key's answer is kept this way, so that it commits with the command's
    writes or not at all (``gateway.idempotency.guard``)."""

    async def before(self, conn: Connection) -> None: ...

    async def after(self, conn: Connection, result: T_contra) -> None: ...


async def with_retries(
    pool: asyncpg.Pool,
    attempt: Callable[[Connection], Awaitable[T]],
    subject: str = "client",
    guard: Guard[T] | None = None,
    policy: RetryPolicy = CONFLICTS,
) -> T:
    """Run ``attempt`` in a transaction of its own, again in a new one (so with a new
    transaction id) after a version conflict, as ``policy`` says; ``ConcurrentModification``
    once its tries are used up. ``guard`` runs in each attempt's transaction, around
    ``attempt``."""
    try:
        async for tried in policy.retrying(*_RETRYABLE, event="command_conflict", subject=subject):
            with tried:
                async with pool.acquire() as conn, appending(conn):
                    if guard is not None:
                        await guard.before(conn)
                    await writing(conn, READ_MODELS)
                    result = await attempt(conn)
                    if guard is not None:
                        await guard.after(conn, result)
                    return result
    except _RETRYABLE:
        pass
    raise ConcurrentModification(subject)
