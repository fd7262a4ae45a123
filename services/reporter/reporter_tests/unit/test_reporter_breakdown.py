"""The statistics by dimension: where a message counts as its status moves, the latency
buckets, and percentiles read from bucket counts (against a brute-force nearest rank)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from reporter.breakdown import (
    FLOOR_S,
    LAST_BUCKET,
    RESOLUTION,
    UNKNOWN,
    dimension_keys,
    latency,
    latency_bucket,
    latency_of,
    lower_edge,
    upper_edge,
)
from reporter.domain import ClientValues, Fact, Kind, MessageState, apply
from reporter.stats import tally_batch

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
MAILING = 7
VIP_MOSCOW = ClientValues("999", "vip", "Europe/Moscow")


def fact(kind: Kind, at: datetime | None = None, **kw: object) -> Fact:
    return Fact(kind, 1, MAILING, T0, at=at, **kw)  # type: ignore[arg-type]


def scheduled(at: datetime = T0, client: ClientValues | None = VIP_MOSCOW) -> Fact:
    return fact(Kind.SCHEDULED, at, client_id=5, client=client)


def run(*facts: Fact) -> MessageState:
    state: MessageState | None = None
    for f in facts:
        state = apply(state, f)
    assert state is not None
    return state


def tallied(*batches: list[Fact]) -> tuple[dict[tuple[int, str, str], list[int]], dict[int, int]]:
    """Dimension and latency rows after projecting ``batches`` one after another (zeros out)."""
    current: dict[int, MessageState] = {}
    dims: dict[tuple[int, str, str], list[int]] = {}
    lat: dict[int, int] = {}
    for batch in batches:
        outcome, tally = tally_batch(current, batch)
        for key, counts in tally.dimensions.items():
            row = dims.setdefault(key, [0, 0, 0, 0])
            row[:] = [a + b for a, b in zip(row, counts, strict=True)]
        for (_, bucket), n in tally.latency.items():
            lat[bucket] = lat.get(bucket, 0) + n
        current.update({new.message_id: new for _, new in outcome.changes})
    return (
        {k: v for k, v in dims.items() if any(v)},
        {b: n for b, n in lat.items() if n},
    )


def test_a_message_counts_under_its_clients_operator_tag_and_zone() -> None:
    assert dimension_keys(run(scheduled())) == (
        ("operator_code", "999"),
        ("tag", "vip"),
        ("time_zone", "Europe/Moscow"),
    )
    no_tag = ClientValues("999", None, "Asia/Tokyo")
    assert ("tag", "") in dimension_keys(run(scheduled(client=no_tag)))


def test_without_recorded_values_a_message_counts_as_unknown() -> None:
    assert dimension_keys(run(scheduled(client=None))) == ((UNKNOWN, ""),)


def test_the_values_at_the_first_schedule_stay_whatever_comes_later() -> None:
    moved = ClientValues("901", None, "Asia/Tokyo")
    later = T0 + timedelta(hours=1)
    state = run(scheduled(), fact(Kind.RESCHEDULED, later, client=moved))
    assert (state.client, state.first_due_at, state.datetime_send) == (VIP_MOSCOW, T0, later)


def test_a_schedule_arriving_after_the_delivery_still_brings_the_values_and_due_time() -> None:
    sent = T0 + timedelta(seconds=30)
    state = run(fact(Kind.DELIVERED, sent, attempts=1), scheduled())
    assert (state.client, state.first_due_at) == (VIP_MOSCOW, T0)
    assert latency_of(state) == latency_bucket(30)


def test_status_changes_move_the_message_between_buckets() -> None:
    retry, sent = T0 + timedelta(seconds=30), T0 + timedelta(seconds=45)
    dims, lat = tallied(
        [scheduled()],
        [fact(Kind.ATTEMPT_FAILED, retry, attempts=1, error="HTTP 503")],
        [fact(Kind.DELIVERED, sent, attempts=2)],
    )
    # Counted once, as delivered, under each of its three values; latency from the first due.
    assert dims == {
        (MAILING, "operator_code", "999"): [0, 1, 0, 0],
        (MAILING, "tag", "vip"): [0, 1, 0, 0],
        (MAILING, "time_zone", "Europe/Moscow"): [0, 1, 0, 0],
    }
    assert lat == {latency_bucket(45): 1}


def test_a_withdrawn_message_leaves_every_bucket() -> None:
    assert tallied([scheduled()], [fact(Kind.WITHDRAWN)]) == ({}, {})


def test_cancelled_messages_count_by_dimension_but_have_no_latency() -> None:
    dims, lat = tallied([scheduled()], [fact(Kind.CANCELLED)])
    assert dims[(MAILING, "tag", "vip")] == [0, 0, 0, 1]
    assert lat == {}


def test_a_late_delivery_outranks_a_final_failure_and_moves_its_latency() -> None:
    failed, sent = T0 + timedelta(minutes=5), T0 + timedelta(seconds=2)
    dims, lat = tallied(
        [scheduled()],
        [fact(Kind.UNDELIVERED, failed, attempts=2, error="x")],
        [fact(Kind.DELIVERED, sent, attempts=1)],
    )
    assert dims[(MAILING, "operator_code", "999")] == [0, 1, 0, 0]
    assert lat == {latency_bucket(2): 1}


def test_one_batch_or_many_end_in_the_same_rows() -> None:
    facts = [
        scheduled(),
        fact(Kind.ATTEMPT_FAILED, T0 + timedelta(seconds=30), attempts=1, error="e"),
        fact(Kind.UNDELIVERED, T0 + timedelta(minutes=2), attempts=2, error="e"),
    ]
    assert tallied(facts) == tallied(*([f] for f in facts))


def test_buckets_are_ten_per_decade_from_a_tenth_of_a_second() -> None:
    assert latency_bucket(0) == latency_bucket(0.099) == 0
    assert latency_bucket(-3) == 0  # clocks apart: as fast as can be
    assert latency_bucket(FLOOR_S) == 1
    assert latency_bucket(1.0) == 11 and lower_edge(11) == 1.0
    assert latency_bucket(0.999) == 10
    assert latency_bucket(1e12) == LAST_BUCKET and upper_edge(LAST_BUCKET) is None
    assert RESOLUTION == 0.259


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_every_latency_falls_between_its_buckets_edges(seconds: float) -> None:
    b = latency_bucket(seconds)
    edge = upper_edge(b)
    assert lower_edge(b) <= seconds and (edge is None or seconds < edge)
    if edge is not None and b > 0:
        assert edge / lower_edge(b) <= 1 + RESOLUTION + 1e-9


def test_no_settled_message_no_percentiles() -> None:
    assert latency({}) is None
    assert latency({3: 0}) is None


def test_one_message_is_every_percentile_and_the_max() -> None:
    found = latency({latency_bucket(12.0): 1})
    assert found is not None
    edge = upper_edge(latency_bucket(12.0))
    assert edge is not None
    assert found.settled == 1
    assert found.percentiles == {50: round(edge, 3), 90: round(edge, 3), 99: round(edge, 3)}
    assert found.max_s == round(edge, 3)


def test_the_open_last_bucket_reads_as_its_lower_edge() -> None:
    found = latency({LAST_BUCKET: 2})
    assert found is not None and found.max_s == round(lower_edge(LAST_BUCKET), 3)


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=300))
def test_percentiles_bound_the_exact_nearest_rank_from_above_within_a_bucket(
    latencies: list[float],
) -> None:
    counts: dict[int, int] = {}
    for s in latencies:
        counts[latency_bucket(s)] = counts.get(latency_bucket(s), 0) + 1
    found = latency(counts)
    assert found is not None and found.settled == len(latencies)
    ordered = sorted(latencies)
    for p, value in found.percentiles.items():
        exact = ordered[math.ceil(p * len(ordered) / 100) - 1]  # the dumbest nearest rank
        assert value == round(upper_edge(latency_bucket(exact)) or 0, 3)
        assert exact <= value + 0.001 and value <= max(exact, FLOOR_S) * (1 + RESOLUTION) + 0.001
    values = [found.percentiles[p] for p in sorted(found.percentiles)]
    assert values == sorted(values) and values[-1] <= found.max_s
