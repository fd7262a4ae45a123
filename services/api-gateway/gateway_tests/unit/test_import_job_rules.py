"""The pure parts of import jobs: the Prefer header, job ids, and the share of the file read."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from gateway.clients.import_jobs import ImportJob, JobState, parse_job_id, prefers_async


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("respond-async", True),
        ("Respond-Async", True),
        ("wait=5, respond-async", True),
        ("respond-async; foo=bar", True),
        (None, False),
        ("", False),
        ("return=minimal", False),
        ("respond-asyncx", False),
    ],
)
def test_prefers_async_reads_the_respond_async_token(header: str | None, expected: bool) -> None:
    assert prefers_async(header) is expected


def test_job_ids_are_uuids_and_anything_else_is_no_job() -> None:
    job_id = uuid4()
    assert parse_job_id(str(job_id)) == job_id
    assert parse_job_id("42") is None
    assert parse_job_id("../etc") is None


JOB = ImportJob(
    id=UUID(int=1),
    state=JobState.RUNNING,
    format="csv",
    bytes_total=1000,
    bytes_read=0,
    rows_read=0,
    created=0,
    updated=0,
    unchanged=0,
    rejected=0,
    errors=[],
    error=None,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    finished_at=None,
)


def test_a_running_job_is_at_most_99_percent_done_until_it_succeeds() -> None:
    assert replace(JOB, bytes_read=250).percent == 25.0
    assert replace(JOB, bytes_read=1000).percent == 99.0
    assert replace(JOB, bytes_read=1000, state=JobState.SUCCEEDED).percent == 100.0
    assert replace(JOB, bytes_total=0, state=JobState.SUCCEEDED).percent == 100.0
    assert replace(JOB, bytes_total=0).percent == 0.0
    assert replace(JOB, bytes_read=400, state=JobState.FAILED).percent == 40.0


def test_only_running_is_not_final() -> None:
    assert [s for s in JobState if not s.is_final] == [JobState.RUNNING]
