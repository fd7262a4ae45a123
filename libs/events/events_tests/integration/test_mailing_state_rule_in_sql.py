"""The mailing state rule has one definition (``sms_events.vocabulary``) written twice: in Python
and as the SQL expression the reporter counts states with. Hypothesis draws the facts, unknown
dates included, and the real PostgreSQL evaluates the SQL: both always agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from hypothesis import given, settings
from hypothesis import strategies as st

from sms_events.vocabulary import mailing_state, mailing_state_sql

T0 = datetime(2030, 1, 1, tzinfo=UTC)
# A few minutes around one moment, so that equal, earlier and later all come up often.
moments = st.integers(-3, 3).map(lambda m: T0 + timedelta(minutes=m))
SQL = "SELECT " + mailing_state_sql(
    "$1::timestamptz",
    start="$2::timestamptz",
    end="$3::timestamptz",
    paused="$4::bool",
    cancelled="$5::bool",
    all_messages_final="$6::bool",
)


async def test_sql_and_python_agree(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:

        @settings(max_examples=300, deadline=None)
        @given(
            now=moments,
            start=st.none() | moments,
            end=st.none() | moments,
            paused=st.booleans(),
            cancelled=st.booleans(),
            final=st.booleans(),
        )
        def agree(
            now: datetime,
            start: datetime | None,
            end: datetime | None,
            paused: bool,
            cancelled: bool,
            final: bool,
        ) -> None:
            drawn.append((now, start, end, paused, cancelled, final))

        drawn: list[tuple[datetime, datetime | None, datetime | None, bool, bool, bool]] = []
        agree()  # draws the cases; PostgreSQL is asked below, outside Hypothesis' sync runner
        assert len(drawn) > 50
        for now, start, end, paused, cancelled, final in drawn:
            in_sql = await conn.fetchval(SQL, now, start, end, paused, cancelled, final)
            in_python = mailing_state(
                now, start=start, end=end, paused=paused, cancelled=cancelled,
                all_messages_final=final,
            )  # fmt: skip
            assert in_sql == in_python.value, (now, start, end, paused, cancelled, final)
