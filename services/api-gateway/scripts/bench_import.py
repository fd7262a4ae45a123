"""Time a bulk client import through a real gateway process over HTTP.

Creates a throwaway database (as the tests do), starts `python -m gateway` on a free port,
streams a generated CSV of N rows to POST /api/v1/clients/import, then imports the same file a
second time (every row unchanged), and prints both timings.

    .venv/bin/python services/api-gateway/scripts/bench_import.py --rows 100000 [--relay]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx

from sms_events.testing.environment import TestEnvironment

CHUNK = 64 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _csv(rows: int) -> bytes:
    zones = ("UTC", "Europe/Moscow", "Asia/Omsk", "Asia/Vladivostok")
    lines = ["phone,tag,time_zone"]
    lines += [f"79{n:09d},bench{n % 7},{zones[n % 4]}" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


async def _stream(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


async def _import(base: str, key: str, body: bytes) -> tuple[float, dict[str, object]]:
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        started = time.perf_counter()
        response = await client.post(
            "/api/v1/clients/import",
            content=_stream(body),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
        )
        seconds = time.perf_counter() - started
    response.raise_for_status()
    result = response.json()
    result["errors"] = len(result["errors"])
    return seconds, result


async def _wait_up(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("gateway did not become ready")


async def main(rows: int, relay: bool) -> None:
    env = TestEnvironment.create(["sms_events", "gateway"])
    key, port = f"bench-{uuid4().hex}", _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway",
        env={**os.environ, **env.env_vars(), "API_KEYS": key, "GATEWAY_PORT": str(port),
             "RELAY_ENABLED": str(relay).lower(), "LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_up(base)
        body = _csv(rows)
        print(f"{rows} rows, {len(body) / 1e6:.1f} MB, relay {'on' if relay else 'off'}")
        for label in ("first import (all created)", "same file again (all unchanged)"):
            seconds, result = await _import(base, key, body)
            print(f"{label}: {seconds:.2f} s, {rows / seconds:,.0f} rows/s, {result}")
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
        env.destroy()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--relay", action="store_true", help="run the outbox relay meanwhile")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.relay))
