"""The audience filter has one definition (``sms_events.audience``) written twice: in Python and
as the SQL the scheduler resolves audiences with and the gateway forecasts them with. Hypothesis
draws filters (spaces, empty items and repeats included) and clients, and the real PostgreSQL
evaluates the SQL: both always agree."""

from __future__ import annotations

import asyncpg
from hypothesis import given, settings
from hypothesis import strategies as st

from sms_events.audience import matches_filter, matches_sql, parse_client_filter

# Few values, so that a client often matches by code, by tag, by both or by neither.
values = st.sampled_from(["900", "901", "vip", "VIP", "a b", ""])
filters = (
    st.lists(
        st.tuples(values, st.sampled_from(["", " ", "  "])).map(lambda v: v[1] + v[0] + v[1]),
        max_size=4,
    ).map(",".join)
    | st.none()
)
SQL = f"SELECT {matches_sql(1)} FROM (SELECT $2::text AS operator_code, $3::text AS tag) c"


async def test_sql_and_python_agree(pool: asyncpg.Pool) -> None:
    drawn: list[tuple[str | None, str, str | None]] = []

    @settings(max_examples=300, deadline=None)
    @given(text=filters, operator_code=values, tag=st.none() | values)
    def draw(text: str | None, operator_code: str, tag: str | None) -> None:
        drawn.append((text, operator_code, tag))

    draw()  # draws the cases; PostgreSQL is asked below, outside Hypothesis' sync runner
    assert len(drawn) > 50
    async with pool.acquire() as conn:
        for text, operator_code, tag in drawn:
            items = parse_client_filter(text)
            in_sql = await conn.fetchval(SQL, sorted(items), operator_code, tag)
            assert in_sql == matches_filter(items, operator_code, tag), (text, operator_code, tag)
