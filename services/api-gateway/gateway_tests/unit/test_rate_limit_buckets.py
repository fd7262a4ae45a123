"""The token bucket rule: a burst, then the average rate, a wait that says when, buckets apart
per key, and a bounded table."""

from __future__ import annotations

import pytest

from gateway.rate_limits import Rate, RateLimited, TokenBuckets


def test_a_burst_then_the_rate() -> None:
    buckets = TokenBuckets(Rate(per_s=2, burst=4))
    assert [buckets.take("k", 0.0) for _ in range(4)] == [None] * 4
    assert buckets.take("k", 0.0) == pytest.approx(0.5)  # one token comes every 0.5 s
    assert buckets.take("k", 0.5) is None
    assert buckets.take("k", 0.5) == pytest.approx(0.5)
    assert buckets.take("k", 10.0) is None  # refilled, never past the burst
    assert [buckets.take("k", 10.0) for _ in range(3)] == [None] * 3
    assert buckets.take("k", 10.0) is not None


def test_a_refused_request_spends_nothing() -> None:
    buckets = TokenBuckets(Rate(per_s=1, burst=1))
    assert buckets.take("k", 0.0) is None
    for _ in range(5):
        assert buckets.take("k", 0.0) == pytest.approx(1.0)
    assert buckets.take("k", 1.0) is None


def test_keys_have_their_own_buckets_and_zero_is_off() -> None:
    buckets = TokenBuckets(Rate(per_s=1, burst=1))
    assert buckets.take("a", 0.0) is None
    assert buckets.take("b", 0.0) is None
    assert buckets.take("a", 0.0) is not None
    off = TokenBuckets(Rate(per_s=0, burst=0))
    assert all(off.take("a", 0.0) is None for _ in range(1000))


def test_the_table_is_bounded_dropping_the_least_recently_used() -> None:
    buckets = TokenBuckets(Rate(per_s=1, burst=1), max_buckets=2)
    buckets.take("a", 0.0)
    buckets.take("b", 0.0)
    buckets.take("c", 0.0)  # drops a
    assert buckets.take("a", 0.0) is None  # back, full
    assert buckets.take("c", 0.0) is not None


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert RateLimited("x", 0.2).headers() == {"Retry-After": "1"}
    assert RateLimited("x", 2.1).headers() == {"Retry-After": "3"}
