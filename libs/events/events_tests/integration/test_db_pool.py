"""The pool: acquiring a connection gives up after its timeout (the database is unavailable,
a transient error), while a statement cut off by a timeout is the work's own failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from sms_events.db import PoolTimeout, create_pool, is_transient
from sms_events.settings import ServiceSettings
from tests.support.tcp_proxy import proxied_url

from .eventlib_support import TcpProxy


def _via(settings: ServiceSettings, proxy: TcpProxy) -> str:
    return proxied_url(settings.database_url, proxy.port)


async def test_acquire_gives_up_after_its_timeout_when_every_connection_is_busy(
    settings: ServiceSettings,
) -> None:
    pool = await create_pool(settings.database_url, min_size=1, max_size=1, acquire_timeout=0.3)
    try:
        async with pool.acquire():
            started = time.monotonic()
            with pytest.raises(PoolTimeout) as raised:
                async with pool.acquire():
                    pass
            assert 0.25 < time.monotonic() - started < 2
            with pytest.raises(PoolTimeout):
                await pool.fetchval("SELECT 1")  # the pool's own shortcuts are bounded too
            with pytest.raises(PoolTimeout):
                await pool.acquire()
        assert is_transient(raised.value)
        assert isinstance(raised.value, TimeoutError)  # "unavailable" to whoever maps timeouts
        assert await pool.fetchval("SELECT 1", timeout=5) == 1
        async with pool.acquire(timeout=5) as conn:  # a caller's own timeout still applies
            assert await conn.fetchval("SELECT 2") == 2
    finally:
        await pool.close()


async def test_acquire_gives_up_when_the_database_does_not_answer(
    settings: ServiceSettings, tcp_proxy: Callable[[int], Awaitable[TcpProxy]]
) -> None:
    proxy = await tcp_proxy(settings.database_url)
    pool = await create_pool(_via(settings, proxy), min_size=1, max_size=2, acquire_timeout=0.5)
    try:
        with pytest.raises(PoolTimeout, match="not released"):
            async with pool.acquire():
                proxy.freeze()  # a network partition: connects, then silence
                started = time.monotonic()
                with pytest.raises(PoolTimeout, match="no database connection"):
                    async with pool.acquire():
                        pass  # pragma: no cover - never acquired
                assert time.monotonic() - started < 3
            # Leaving the block resets the connection for the next user: that is bounded too.
    finally:
        pool.terminate()


async def test_a_statement_cut_off_by_the_command_timeout_is_not_transient(
    settings: ServiceSettings,
) -> None:
    pool = await create_pool(settings.database_url, min_size=1, max_size=1, command_timeout=0.2)
    try:
        with pytest.raises(TimeoutError) as raised:
            await pool.execute("SELECT pg_sleep(5)")
        assert not is_transient(raised.value)
        assert await pool.fetchval("SELECT 1") == 1  # the connection is still good
    finally:
        await pool.close()


async def test_a_statement_cancelled_by_the_servers_statement_timeout_is_not_transient(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL statement_timeout = '50ms'")
        with pytest.raises(asyncpg.QueryCanceledError) as raised:
            await conn.execute("SELECT pg_sleep(5)")
    assert not is_transient(raised.value)


async def test_a_connection_lost_mid_statement_is_transient(
    settings: ServiceSettings, tcp_proxy: Callable[[int], Awaitable[TcpProxy]]
) -> None:
    proxy = await tcp_proxy(settings.database_url)
    pool = await create_pool(_via(settings, proxy), min_size=1, max_size=1, acquire_timeout=0.5)
    try:
        query = asyncio.create_task(pool.execute("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.2)
        await proxy.close()  # every connection reset, new ones refused
        with pytest.raises(Exception) as lost:
            await query
        with pytest.raises(Exception) as refused:
            await pool.fetchval("SELECT 1")
        assert is_transient(lost.value), repr(lost.value)
        assert is_transient(refused.value), repr(refused.value)
        await proxy.open()
        assert await pool.fetchval("SELECT 1") == 1  # and the pool reconnects by itself
    finally:
        await pool.close()


async def test_the_server_cuts_long_statements_and_idle_open_transactions_itself(
    settings: ServiceSettings,
) -> None:
    """Backstops that hold even when the service is hung: PostgreSQL cancels a statement past
    the command timeout (+5 s) and ends a session idle inside a transaction."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=1,
                             command_timeout=2.0, idle_in_transaction_timeout=0.5)  # fmt: skip
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "7s"
            with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                                asyncpg.IdleInTransactionSessionTimeoutError)):  # fmt: skip
                async with conn.transaction():
                    await conn.execute("SELECT 1")
                    await asyncio.sleep(1.5)  # idle inside the transaction: the server ends it
                    await conn.execute("SELECT 1")
        assert await pool.fetchval("SELECT 1") == 1  # the pool replaces the lost connection
    finally:
        await pool.close()
