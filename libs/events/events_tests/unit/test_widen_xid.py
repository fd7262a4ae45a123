"""Widening a running transaction's 32-bit xid to the 64-bit xid8 the events carry."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sms_events.horizon import widen_xid

EPOCH = 1 << 32


def _nearest(xid: int, xmax: int) -> int:
    """The dumbest correct version: of all 64-bit ids ending in ``xid``, the one nearest xmax."""
    epoch = xmax // EPOCH
    candidates = [e * EPOCH + xid for e in (epoch - 1, epoch, epoch + 1) if e >= 0]
    return min(candidates, key=lambda c: abs(c - xmax))


def test_an_xid_of_the_same_epoch_keeps_it() -> None:
    assert widen_xid(1_000, 3 * EPOCH + 1_500) == 3 * EPOCH + 1_000


def test_an_xid_from_before_the_wrap_belongs_to_the_previous_epoch() -> None:
    assert widen_xid(EPOCH - 10, 3 * EPOCH + 5) == 2 * EPOCH + EPOCH - 10


def test_an_xid_assigned_after_the_snapshot_is_not_pushed_back_an_epoch() -> None:
    # "epoch of xmax, minus one if xid > low32(xmax)" would give 2 * EPOCH + 1_600 here.
    assert widen_xid(1_600, 3 * EPOCH + 1_500) == 3 * EPOCH + 1_600


def test_an_xid_assigned_after_the_snapshot_and_after_a_wrap_is_in_the_next_epoch() -> None:
    assert widen_xid(3, 3 * EPOCH + EPOCH - 2) == 4 * EPOCH + 3


@given(
    xmax=st.integers(min_value=EPOCH, max_value=(1 << 40)),
    offset=st.integers(min_value=-(1 << 31) + 1, max_value=(1 << 31) - 1),
)
def test_widening_finds_the_running_xid_within_two_to_the_31(xmax: int, offset: int) -> None:
    xid8 = xmax + offset
    assert widen_xid(xid8 % EPOCH, xmax) == xid8 == _nearest(xid8 % EPOCH, xmax)
