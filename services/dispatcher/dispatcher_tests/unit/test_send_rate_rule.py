"""The adaptive send rate's rule: additive increase, multiplicative cut, floor and ceiling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.send_rate import Answers, CutReason, RatePolicy, cut, cut_reason, raised, verdict

FREE = RatePolicy(floor=10, step=20)
CAPPED = RatePolicy(floor=10, ceiling=500, step=20)


def test_free_until_the_provider_throttles_then_cut_from_what_it_accepted() -> None:
    assert FREE.initial is None and raised(None, 5, FREE) is None
    assert cut(None, accepted=400, policy=FREE) == 200


def test_a_ceiling_is_where_it_starts_and_stops() -> None:
    assert CAPPED.initial == 500
    assert raised(490, 1, CAPPED) == 500
    assert cut(None, accepted=2000, policy=CAPPED) == 250


def test_cuts_halve_down_to_the_floor_and_steps_add() -> None:
    assert cut(100, accepted=0, policy=FREE) == 50
    assert cut(15, accepted=0, policy=FREE) == 10
    assert raised(50, 1, FREE) == 70
    assert raised(50, 0.5, FREE) == 60


@pytest.mark.parametrize(
    ("status", "retry_after", "reason"),
    [(200, False, None), (400, False, None), (None, False, None), (429, False, CutReason.THROTTLED),
     (200, True, CutReason.THROTTLED), (500, False, CutReason.SERVER_ERROR),
     (503, True, CutReason.THROTTLED)],
)  # fmt: skip
def test_which_answers_cut(status: int | None, retry_after: bool, reason: CutReason | None) -> None:
    assert cut_reason(status, retry_after) == reason


@given(
    rate=st.one_of(st.none(), st.floats(1, 1e6)),
    accepted=st.floats(0, 1e6),
    ceiling=st.sampled_from([0.0, 50.0, 5000.0]),
    elapsed=st.floats(0, 100),
)
def test_the_rate_stays_between_floor_and_ceiling(
    rate: float | None, accepted: float, ceiling: float, elapsed: float
) -> None:
    policy = RatePolicy(floor=10, ceiling=ceiling, step=20)
    after_cut = cut(rate, accepted, policy)
    assert after_cut >= policy.floor
    assert not ceiling or after_cut <= ceiling
    if rate is not None and rate >= policy.floor and (not ceiling or rate <= ceiling):
        up = raised(rate, elapsed, policy)
        assert up is not None and rate <= up and (not ceiling or up <= ceiling)


def test_a_policy_that_cannot_hold_is_refused() -> None:
    for bad in ({"floor": 0}, {"floor": 10, "ceiling": 5}, {"floor": 10, "factor": 1.0}):
        with pytest.raises(ValueError):
            RatePolicy(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("accepted", "throttled", "errors", "expected"),
    [(100, 0, 0, None), (100, 1, 0, CutReason.THROTTLED), (95, 0, 5, None),
     (6, 0, 2, None), (60, 0, 20, CutReason.SERVER_ERROR), (0, 0, 3, CutReason.SERVER_ERROR)],
)  # fmt: skip
def test_any_throttle_cuts_but_only_a_real_share_of_server_errors_does(
    accepted: int, throttled: int, errors: int, expected: CutReason | None
) -> None:
    assert verdict(Answers(accepted, throttled, errors), FREE) == expected
