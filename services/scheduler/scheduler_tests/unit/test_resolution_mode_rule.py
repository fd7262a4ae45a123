"""``domain.resolution_mode``: what a mailing event lets its audience resolution change."""

from __future__ import annotations

import itertools

from scheduler.domain import ResolutionMode, resolution_mode


def test_before_the_start_the_audience_follows_the_base() -> None:
    for created, accepted in itertools.product((True, False), repeat=2):
        mode = resolution_mode(created=created, started=False, accepted_before_start=accepted)
        assert mode is ResolutionMode.FOLLOW_BASE


def test_after_the_start_a_new_mailing_adds_and_an_edit_only_brings_in_the_left_out() -> None:
    assert resolution_mode(created=True, started=True, accepted_before_start=False) is (
        ResolutionMode.ADD_MISSING
    )
    assert resolution_mode(created=False, started=True, accepted_before_start=False) is (
        ResolutionMode.LEFT_OUT
    )


def test_an_edit_accepted_before_the_start_is_applied_in_full_when_handled_after_it() -> None:
    assert resolution_mode(created=False, started=True, accepted_before_start=True) is (
        ResolutionMode.FOLLOW_BASE
    )
