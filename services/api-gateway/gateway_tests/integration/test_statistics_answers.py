"""/api/v1/stats/ and /api/v1/mailings/{id}/stats/ answer the reporter's figures, parsed with
the reporter contract's models and rendered again: pinned here byte for byte against what the
reporter wrote (timestamps to the microsecond or to the second, days, rates, nulls), with the
answer for a mailing the reporter has not seen yet, and a garbled answer as an outage."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from ..reporter_support import ReporterDouble
from .mailing_support import URL, create

OVERALL: dict[str, Any] = {
    "clients": 3,
    "mailings": {"scheduled": 1, "running": 0, "paused": 0, "finished": 2, "cancelled": 0},
    "messages": {"SC": 3, "DL": 5, "ND": 1, "CA": 0},
    "delivery_rate": 0.8333,
    "sends_per_hour": [
        {"hour": "2024-02-14T07:00:00Z", "delivered": 0, "failed": 0},
        {"hour": "2024-02-14T08:00:00Z", "delivered": 5, "failed": 1},
    ],
    "segments_per_day": [
        {"day": "2024-02-13", "segments": 0},
        {"day": "2024-02-14", "segments": 7},
    ],
}


def mailing_answer(mailing_id: int) -> dict[str, Any]:
    counts = {"SC": 0, "DL": 3, "ND": 1, "CA": 0}
    return {
        "mailing_id": mailing_id,
        "messages": counts,
        "delivery_rate": 0.75,
        "attempts_total": 6,
        "failures": [
            {"reason": "HTTP 503", "attempts": 2, "final": 0},
            {"reason": "HTTP 400: invalid phone", "attempts": 1, "final": 1},
        ],
        "started_at": "2024-02-14T08:47:44.047000Z",
        "completed_at": "2024-02-14T08:47:46Z",
        "time_to_complete_s": 2.05,
        "sends_per_minute": [{"minute": "2024-02-14T08:47:00Z", "delivered": 3, "failed": 1}],
        "segments_per_message": 2,
        "segments_sent": 6,
        "by_dimension": {
            "operator_code": [{"value": "999", "messages": counts, "delivery_rate": 0.75}],
            "tag": [{"value": None, "messages": counts, "delivery_rate": 0.75}],
            "time_zone": [],
            "unknown": {"SC": 0, "DL": 0, "ND": 0, "CA": 0},
        },
        "latency": {"settled": 4, "p50_s": 1.259, "p90_s": 2.512, "p99_s": 2.512,
                    "max_s": 2.512, "resolution": 0.259},
    }  # fmt: skip


def reporters_bytes(answer: dict[str, Any]) -> bytes:
    return orjson.dumps(answer)  # the timestamps above are already the reporter's text


async def test_the_overall_figures_read_as_the_reporter_wrote_them(
    client: httpx.AsyncClient, reporter: ReporterDouble
) -> None:
    reporter.overview = OVERALL
    response = await client.get("/api/v1/stats/")
    assert response.status_code == 200, response.text
    assert response.content == reporters_bytes(OVERALL)
    asked = await client.get("/api/v1/stats/", params={"as_of": "2024-02-14T09:00:00+03:00"})
    assert asked.content == reporters_bytes(OVERALL)
    asked_for = reporter.calls_to("/internal/v1/stats")[-1].query
    assert asked_for == {"as_of": "2024-02-14T09:00:00+03:00"}


async def test_a_mailings_figures_read_as_the_reporter_wrote_them(
    client: httpx.AsyncClient, reporter: ReporterDouble
) -> None:
    mid = (await create(client))["id"]
    reporter.mailing_stats[mid] = mailing_answer(mid)
    response = await client.get(f"{URL}{mid}/stats/")
    assert response.status_code == 200, response.text
    assert response.content == reporters_bytes(mailing_answer(mid))


async def test_a_mailing_the_reporter_has_not_seen_has_zero_figures(
    client: httpx.AsyncClient, reporter: ReporterDouble
) -> None:
    mid = (await create(client, text="x" * 200))["id"]  # GSM-7, 160+ characters: 2 segments
    response = await client.get(f"{URL}{mid}/stats/")
    assert response.status_code == 200, response.text
    none = {"SC": 0, "DL": 0, "ND": 0, "CA": 0}
    assert response.json() == {
        "mailing_id": mid,
        "messages": none,
        "delivery_rate": None,
        "attempts_total": 0,
        "failures": [],
        "started_at": None,
        "completed_at": None,
        "time_to_complete_s": None,
        "sends_per_minute": [],
        "segments_per_message": 2,
        "segments_sent": 0,
        "by_dimension": {"operator_code": [], "tag": [], "time_zone": [], "unknown": none},
        "latency": None,
    }
    assert list(response.json()) == list(mailing_answer(mid))  # the same keys, in order


@pytest.mark.parametrize(
    "garble",
    [
        {"clients": -1},  # a negative count
        {"clients": True},  # not an integer
        {"surprise": 1},  # a field the contract does not know
        {"sends_per_hour": [{"hour": "yesterday", "delivered": 0, "failed": 0}]},
    ],
)
async def test_a_garbled_answer_is_an_outage_not_an_error(
    client: httpx.AsyncClient, reporter: ReporterDouble, garble: dict[str, Any]
) -> None:
    reporter.overview = OVERALL | garble
    response = await client.get("/api/v1/stats/")
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"


async def test_unknown_mailings_are_404_and_failures_are_503(
    client: httpx.AsyncClient, reporter: ReporterDouble
) -> None:
    assert (await client.get(f"{URL}999999999/stats/")).status_code == 404
    mid = (await create(client))["id"]
    reporter.fail_with = 502
    for url in ("/api/v1/stats/", f"{URL}{mid}/stats/"):
        response = await client.get(url)
        assert response.status_code == 503, (url, response.text)
