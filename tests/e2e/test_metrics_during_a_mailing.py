"""Every service's /metrics, scraped before and after a mailing of 200 clients with a provider
that fails a fifth of the calls: the figures move as they should, with bounded labels only."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.e2e_support import create_mailing, eventually, mailing, messages, unique_tag
from tests.e2e.system_support import System

N = 200
# The consumer a mailing's events go through, per service; the dispatcher also runs
# "dispatcher-projections" (pauses, cancels and opt-outs), which a mailing may not touch.
CONSUMERS = {"scheduler": "scheduler", "dispatcher": "dispatcher", "reporter": "reporter"}
ALSO = {"dispatcher": {"dispatcher-projections"}}
SERVICES = ("api-gateway", "scheduler", "dispatcher", "reporter")
# Every label name a platform metric may carry: all bounded (no id of anything).
LABELS = {"method", "route", "status", "type", "consumer", "outcome", "endpoint", "state", "le",
          "reason"}  # fmt: skip
# The default collectors' own labels (python_info, python_gc_*).
DEFAULT_LABELS = {"implementation", "major", "minor", "patchlevel", "version", "generation"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    def __init__(self, samples: Iterable[Sample]) -> None:
        self.samples = list(samples)

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def by(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for s in self.samples:
            if s.name == name:
                out[s.labels[label]] += s.value
        return dict(out)


def scrape(system: System, service: str) -> Scrape:
    resp = httpx.get(f"{system.url(service)}/metrics", timeout=10)
    assert resp.status_code == 200, resp.text
    return Scrape(
        Sample(sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(resp.text)
        for sample in family.samples
    )


def scrape_all(system: System) -> dict[str, Scrape]:
    return {service: scrape(system, service) for service in SERVICES}


def _import(api: httpx.Client, tag: str) -> None:
    rows = "".join(f"7955{i:07d},{tag},Europe/Moscow\n" for i in range(N))
    resp = api.post("/api/v1/clients/import", content=("phone,tag,time_zone\n" + rows).encode(),
                    headers={"Content-Type": "text/csv"})  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == N


def test_metrics_follow_a_mailing_with_provider_failures(
    system: System, provider: httpx.Client
) -> None:
    before = scrape_all(system)
    tag = unique_tag()
    provider.post("/_control", json={"failure_rate": 0.2, "seed": 7})
    with system.api() as api:
        _import(api, tag)
        m = create_mailing(api, client_filter=tag)

        def all_delivered() -> None:
            got = mailing(api, m["id"])
            assert got["delivered_messages"] == N, got

        eventually(all_delivered, timeout=120, every=0.5)
        assert any(x["attempts"] > 1 for x in messages(api, m["id"]))  # failures were retried

    # The reporter's gauges refresh every 10 s; the relay publishes what was appended.
    def settled() -> dict[str, Scrape]:
        now = scrape_all(system)
        moved = now["reporter"].total("reporter_messages", status="DL")
        assert moved - before["reporter"].total("reporter_messages", status="DL") == N
        appended = sum(_delta(before, now, s, "sms_events_appended_total") for s in SERVICES)
        published = sum(_delta(before, now, s, "sms_outbox_published_total") for s in SERVICES)
        assert published >= appended > 0
        return now

    after = eventually(settled, timeout=40, every=1)

    gateway_requests(before["api-gateway"], after["api-gateway"])
    events_appended(before, after)
    consumers(before, after)
    dispatcher_calls(before["dispatcher"], after["dispatcher"])
    assert _delta(before, after, "scheduler", "scheduler_messages_handed_over_total") >= N
    reporter_state(before["reporter"], after["reporter"])
    leaders = [s for s in SERVICES if after[s].total("sms_outbox_relay_leader") == 1]
    assert len(leaders) == 1, leaders
    for service in set(SERVICES) - set(leaders):  # standbys report none of the leader's figures
        assert after[service].total("sms_outbox_backlog") == 0
        assert after[service].total("sms_outbox_oldest_unpublished_age_seconds") == 0
    for service, scraped in after.items():
        bounded_labels(service, scraped)


def _delta(before: dict[str, Scrape], after: dict[str, Scrape], service: str, name: str,
           **labels: str) -> float:  # fmt: skip
    return after[service].total(name, **labels) - before[service].total(name, **labels)


def gateway_requests(before: Scrape, after: Scrape) -> None:
    name = "gateway_http_requests_total"
    moved = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        - before.total(name, **s.labels)
        for s in after.samples
        if s.name == name
    }
    moved = {k: v for k, v in moved.items() if v}
    assert moved[("POST", "/api/v1/clients/import", "200")] == 1, moved
    (create,) = [v for (m, r, st), v in moved.items() if m == "POST" and st == "201"]
    assert create == 1
    # Polling the mailing is counted under its route template, never its path.
    polled = [v for (m, r, st), v in moved.items() if m == "GET" and "{mailing_id}" in r]
    assert sum(polled) >= 2, moved
    assert not [r for _, r, _ in moved if re.search(r"/\d+(/|$)", r)], moved  # no id in a route


def events_appended(before: dict[str, Scrape], after: dict[str, Scrape]) -> None:
    def moved(service: str, event_type: str) -> float:
        return _delta(before, after, service, "sms_events_appended_total", type=event_type)

    # Counted once, centrally, by the store: the import (its 200 clients in one batch event),
    # the mailing.
    assert moved("api-gateway", "clients.imported") == 1
    assert moved("api-gateway", "client.created") == 0
    assert moved("api-gateway", "mailing.scheduled") == 1
    assert moved("scheduler", "messages.scheduled") >= 1
    assert moved("scheduler", "mailing.audience_resolved") == 1
    assert moved("scheduler", "messages.due") >= 2  # the first attempts and the retries
    assert moved("dispatcher", "messages.delivered") >= 1
    assert moved("dispatcher", "messages.attempt_failed") >= 1


def consumers(before: dict[str, Scrape], after: dict[str, Scrape]) -> None:
    for service, consumer in CONSUMERS.items():
        handled = _delta(before, after, service, "sms_consumer_events_handled_total",
                         consumer=consumer)  # fmt: skip
        assert handled > 0, service
        aged = _delta(before, after, service, "sms_consumer_event_age_seconds_count",
                      consumer=consumer)  # fmt: skip
        assert aged == handled, service
        depths = after[service].by("sms_consumer_queue_depth", "consumer")
        assert set(depths) == {consumer} | ALSO.get(service, set()), depths
        assert depths[consumer] >= 0
        lags = after[service].by("sms_consumer_lag_seconds", "consumer")
        assert set(lags) == {consumer} | ALSO.get(service, set()), lags
        assert 0 <= lags[consumer] < 60, lags


def dispatcher_calls(before: Scrape, after: Scrape) -> None:
    calls = {
        outcome: n - before.by("dispatcher_provider_calls_total", "outcome").get(outcome, 0)
        for outcome, n in after.by("dispatcher_provider_calls_total", "outcome").items()
    }
    assert set(calls) <= {"delivered", "retryable", "rejected"}, calls
    assert calls["delivered"] == N  # each message delivered once
    assert sum(calls.values()) >= N
    assert calls.get("retryable", 0) > 0  # the injected failures
    retries = after.total("dispatcher_retries_total") - before.total("dispatcher_retries_total")
    assert retries == calls["retryable"] > 0


def reporter_state(before: Scrape, after: Scrape) -> None:
    messages = after.by("reporter_messages", "status")
    assert set(messages) == {"SC", "DL", "ND", "CA"}
    assert messages["DL"] - before.total("reporter_messages", status="DL") == N
    states = after.by("reporter_mailings", "state")
    assert set(states) == {"scheduled", "running", "paused", "finished", "cancelled"}
    assert states["finished"] - before.total("reporter_mailings", state="finished") == 1


def bounded_labels(service: str, scraped: Scrape) -> None:
    for s in scraped.samples:
        unknown = set(s.labels) - LABELS - DEFAULT_LABELS
        assert not unknown, (service, s.name, unknown)
        for value in s.labels.values():
            assert not re.search(r"\d{6,}", value), (service, s.name, s.labels)
