"""An answer made inside a command's transaction and, with an Idempotency-Key, kept there.

Why in the command's own transaction
------------------------------------
A retry must find the first answer whenever the first request's writes exist. Storing the
answer after the commit leaves a window (the process dies, the pool breaks) in which the mailing
exists and its answer does not: the retry then creates a second one. So the command hands its
result to ``Once.after`` just before it commits (``gateway.transactions.with_retries``), which
renders the response and writes it in the same transaction: the answer, the read-model rows and
the events commit together or not at all.

Why a concurrent duplicate gets 409 rather than waiting
-------------------------------------------------------
``Once.before`` runs first in the transaction and takes the key's advisory lock with
``pg_try_advisory_xact_lock``, then looks for a stored answer. A second request with the key
while the first is still running does not get the lock and answers 409 with ``Retry-After``
(what the IETF Idempotency-Key draft prescribes); its retry finds the committed answer. Waiting
for the lock instead would hold a pooled connection per waiting duplicate, so a client
hammering one key could drain the pool. A unique-key insert as the lock would wait too, and
would give the transaction an id before the command's stream lock, which the order of events
forbids (``gateway.clients.commands``); an advisory lock writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

import asyncpg
from starlette.responses import Response

from gateway.idempotency import store
from gateway.idempotency.rules import KeyInUse, Replayed, Stored, kept_headers, replay_of
from sms_events.db import Connection

__all__ = ["Answering", "Key", "Once", "answer_alone"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Key:
    """An Idempotency-Key as its caller (``owner``) sent it with a request."""

    owner: str
    value: str
    method: str
    path: str
    ttl: timedelta  # how long its answer is replayed


class Answering(Generic[T]):
    """No key: the command's answer is rendered from its result, and nothing is kept."""

    def __init__(self, render: Callable[[T], Response]) -> None:
        self._render = render
        self._response: Response | None = None

    async def before(self, conn: Connection) -> None:
        return None

    async def after(self, conn: Connection, result: T) -> None:
        self._response = self._render(result)

    def response(self) -> Response:
        """The answer of the attempt that committed."""
        assert self._response is not None, "the command has not run"
        return self._response


class Once(Answering[T]):
    """A key: the command runs under the key's lock and its answer is kept with its writes."""

    def __init__(self, key: Key, digest: bytes, render: Callable[[T], Response]) -> None:
        super().__init__(render)
        self._key, self._digest = key, digest

    async def before(self, conn: Connection) -> None:
        key = self._key
        if not await store.try_lock(conn, key.owner, key.value):
            raise KeyInUse("A request with this Idempotency-Key is still in progress; retry.")
        # Committed since the check before the transaction (a concurrent duplicate's answer).
        found = await store.find(conn, key.owner, key.value, key.ttl)
        if (stored := replay_of(found, self._digest)) is not None:
            raise Replayed(stored)

    async def after(self, conn: Connection, result: T) -> None:
        await super().after(conn, result)
        response = self.response()
        answer = Stored(
            self._digest, response.status_code, kept_headers(response.headers), bytes(response.body)
        )
        key = self._key
        await store.save(conn, key.owner, key.value, key.method, key.path, answer)


async def answer_alone(pool: asyncpg.Pool, guard: Answering[T], result: T) -> Response:
    """The answer of a request that wrote nothing (an inbound text that is no stop word), kept
    in a transaction of its own all the same, so that the key's rules hold for it too."""
    async with pool.acquire() as conn, conn.transaction():
        await guard.before(conn)
        await guard.after(conn, result)
    return guard.response()
