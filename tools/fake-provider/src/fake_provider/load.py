"""A bare aiohttp load generator for the probe API (the reference client ceiling):
`python -m fake_provider.load --url http://127.0.0.1:8010 -n 20000 -c 100`."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
from collections import Counter

import aiohttp
import orjson

from fake_provider.__main__ import loop_factory
from fake_provider.config import DEFAULT_TOKEN

__all__ = ["main", "run_load"]


async def run_load(
    url: str, token: str, requests: int, concurrency: int, first_id: int = 1
) -> tuple[float, Counter[int]]:
    """Send ``requests`` probe requests with ``concurrency`` in flight; (seconds, statuses)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    ids = itertools.count(first_id)
    statuses: Counter[int] = Counter()
    end = first_id + requests
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url=url, connector=connector, headers=headers) as http:

        async def worker() -> None:
            for msg_id in ids:
                if msg_id >= end:
                    return
                body = orjson.dumps({"id": msg_id, "phone": 79991234567, "text": "load test"})
                async with http.post(f"/send/{msg_id}", data=body) as resp:
                    await resp.read()
                    statuses[resp.status] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, statuses


def main() -> None:
    parser = argparse.ArgumentParser(prog="sms-fake-provider-load", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8010")
    parser.add_argument("--token", default=os.environ.get("FAKE_PROVIDER_TOKEN", DEFAULT_TOKEN))
    parser.add_argument("-n", "--requests", type=int, default=20_000)
    parser.add_argument("-c", "--concurrency", type=int, default=100)
    parser.add_argument("--first-id", type=int, default=1)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        seconds, statuses = runner.run(
            run_load(args.url, args.token, args.requests, args.concurrency, args.first_id)
        )
    print(
        f"{args.requests} requests, concurrency {args.concurrency}: {seconds:.2f} s, "
        f"{args.requests / seconds:,.0f} requests/s, statuses {dict(sorted(statuses.items()))}"
    )


if __name__ == "__main__":
    main()
