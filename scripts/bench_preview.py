"""How long POST /api/v1/mailings/preview/ takes on a large client base.

    .venv/bin/python scripts/bench_preview.py            # 1,000,000 clients
    .venv/bin/python scripts/bench_preview.py --clients 200000 --opt-outs 0

Creates a database of its own (dropped at the end; needs TEST_DATABASE_URL's superuser, like
the tests), bulk-inserts the clients in one INSERT ... SELECT (30 zones, 50 operator codes,
200 tags and untagged clients), then asks the gateway (in process, through its ASGI app) for
forecasts with no filter, a filter and a window, and prints each one's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

import httpx

from gateway import Settings, create_app
from sms_events.testing.environment import TestEnvironment

ZONES = [
    "Europe/Moscow", "Europe/Kaliningrad", "Europe/Samara", "Asia/Yekaterinburg", "Asia/Omsk",
    "Asia/Novosibirsk", "Asia/Krasnoyarsk", "Asia/Irkutsk", "Asia/Yakutsk", "Asia/Vladivostok",
    "Asia/Magadan", "Asia/Kamchatka", "UTC", "Europe/London", "Europe/Berlin", "Europe/Kyiv",
    "Asia/Almaty", "Asia/Tashkent", "Asia/Tbilisi", "Asia/Yerevan", "Asia/Baku", "Asia/Dubai",
    "Asia/Tokyo", "Asia/Shanghai", "America/New_York", "America/Chicago", "America/Denver",
    "America/Los_Angeles", "Australia/Sydney", "Pacific/Auckland",
]  # fmt: skip
KEY = "bench-preview-key-0123456789-0123456789"


async def _fill(dsn: str, n: int, opted_out: int) -> float:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await conn.execute(
            """
            INSERT INTO gateway_clients (phone, tag, time_zone, version)
            SELECT '7' || (900 + i % 50)::text || lpad(i::text, 7, '0'),
                   CASE WHEN i % 5 = 0 THEN NULL ELSE 'tag' || (i % 200)::text END,
                   ($2::text[])[1 + i % cardinality($2::text[])], 1
              FROM generate_series(1, $1) AS i
            """,
            n,
            ZONES,
        )
        # Every (n // opted_out)-th client's phone on the suppression list: the forecast counts
        # them apart, reading the list through the phone index.
        await conn.execute(
            """
            INSERT INTO gateway_opt_outs (phone, opted_out, source, opted_out_at, version,
                                          updated_at)
            SELECT phone, true, 'import', now(), 1, now() FROM gateway_clients
             WHERE $1 > 0 AND id % greatest(1, $2::bigint / greatest($1, 1)) = 0 LIMIT $1
            """,
            opted_out,
            n,
        )
        await conn.execute("VACUUM ANALYZE gateway_clients")
        await conn.execute("VACUUM ANALYZE gateway_opt_outs")
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _measure(env: TestEnvironment, rounds: int) -> None:
    settings = Settings(
        database_url=env.database_url,
        event_signing_key=env.env_vars()["EVENT_SIGNING_KEY"],
        api_keys=[KEY],
        relay_enabled=False,
        dispatch_rate_limit=200,
        sms_price_per_segment="0.35",
        _env_file=None,
    )
    app = create_app(settings)
    now = datetime.now(UTC)
    base = {
        "datetime_start": (now + timedelta(hours=1)).isoformat(),
        "datetime_end": (now + timedelta(days=2)).isoformat(),
        "text": "Скидка 20% только сегодня!",
    }
    bodies = {
        "every client": base,
        "filter 900, 901, tag7": base | {"client_filter": "900, 901, tag7"},
        "window 09:00-21:00": base
        | {"send_interval_time_start": "09:00", "send_interval_time_end": "21:00"},
    }
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        ) as client,
    ):
        for name, body in bodies.items():
            times = []
            answer: dict[str, object] = {}
            for _ in range(rounds):
                started = time.perf_counter()
                response = await client.post("/api/v1/mailings/preview/", json=body)
                times.append(time.perf_counter() - started)
                response.raise_for_status()
                answer = response.json()
            audience = answer["audience"]
            assert isinstance(audience, dict)
            print(
                f"{name:<24} audience {audience['total']:>9,}  "
                f"opted out {audience['opted_out']:>6,}  "
                f"median {statistics.median(times) * 1000:7.1f} ms  "
                f"max {max(times) * 1000:7.1f} ms  ({rounds} rounds)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--opt-outs", type=int, default=10_000, help="phones on the list")
    args = parser.parse_args()
    env = TestEnvironment.create(["gateway"])
    try:
        took = asyncio.run(_fill(env.database_url, args.clients, args.opt_outs))
        print(f"inserted {args.clients:,} clients ({args.opt_outs:,} opted out) in {took:.1f} s")
        asyncio.run(_measure(env, args.rounds))
    finally:
        env.destroy()


if __name__ == "__main__":
    main()
