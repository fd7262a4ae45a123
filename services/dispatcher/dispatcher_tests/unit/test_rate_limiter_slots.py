"""How the rate limiter cuts a rate into slots (no database needed for this part)."""

from __future__ import annotations

import pytest

from dispatcher.ratelimit import RateLimiter

DUMMY_POOL = object()  # never used: these tests make no calls


@pytest.mark.parametrize(
    ("rate", "limit", "slot_s", "chunk"),
    [
        (200.0, 20, 0.1, 5),
        (5000.0, 500, 0.1, 125),
        (5.0, 1, 0.2, 1),  # below one per 100 ms the slot stretches
        (0.5, 1, 2.0, 1),
        (333.0, 33, 33 / 333, 8),
    ],
)
def test_a_rate_becomes_a_whole_number_of_tokens_per_slot(
    rate: float, limit: int, slot_s: float, chunk: int
) -> None:
    limiter = RateLimiter(DUMMY_POOL, rate)  # type: ignore[arg-type]
    assert limiter.limit_per_slot == limit
    assert limiter.slot_s == pytest.approx(slot_s, abs=1e-6)
    assert limiter.chunk == chunk
    assert limit / limiter.slot_s == pytest.approx(rate, rel=1e-4)


def test_the_chunk_can_be_chosen() -> None:
    assert RateLimiter(DUMMY_POOL, 200.0, chunk=20).chunk == 20  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"rate": -1}, {"rate": float("inf")}, {"rate": 10, "slot_s": 0}, {"rate": 10, "chunk": -1}],
)
def test_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RateLimiter(DUMMY_POOL, **kwargs)  # type: ignore[arg-type]


def test_a_limited_rate_needs_a_pool() -> None:
    with pytest.raises(ValueError):
        RateLimiter(None, 10.0)
    assert RateLimiter(None, 0).unlimited
