"""Dispatcher metrics (bounded labels: outcome and status class, never ids)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from dispatcher.provider import MISCONFIGURATION, SendResult

CALLS = Counter(
    "dispatcher_provider_calls_total", "Calls to the SMS provider by outcome", ["outcome"]
)
LATENCY = Histogram(
    "dispatcher_provider_latency_seconds",
    "Provider call latency",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RETRIES = Counter("dispatcher_retries_total", "Messages handed back for a later attempt")
IN_FLIGHT = Gauge("dispatcher_in_flight_sends", "Provider calls in flight")
SKIPPED = Counter(
    "dispatcher_duplicates_skipped_total", "Due messages skipped as already sent or settled"
)
BREAKER_REJECTED = Counter(
    "dispatcher_breaker_rejected_total", "Messages handed back because the circuit was open"
)
REFUSED = Counter(
    "dispatcher_messages_refused_total",
    "Messages handed back without a call by the call-start rule: opted_out, the send window "
    "or the mailing's end (domain.REFUSALS)",
    ["reason"],
)
BREAKER_STATE = Gauge(
    "dispatcher_breaker_state", "Circuit breaker state (0 closed, 1 half-open, 2 open)"
)
MISCONFIGURED = Counter(
    "dispatcher_provider_misconfigured_total",
    "Provider answers that say the platform's settings are wrong (401, 403, 404, 405)",
)
SEND_RATE = Gauge(
    "dispatcher_send_rate_limit",
    "Adaptive send-rate limit shared by the replicas, messages per second (0: free)",
)
RATE_CUTS = Counter(
    "dispatcher_send_rate_cuts_total", "Cuts of the adaptive send rate by reason", ["reason"]
)
RATE_LIMIT_WAIT = Counter(
    "dispatcher_rate_limit_wait_seconds_total", "Seconds spent waiting for the send-rate limit"
)


def observe(result: SendResult) -> None:
    CALLS.labels(result.outcome.value).inc()
    LATENCY.observe(result.latency_s)
    if result.retryable:
        RETRIES.inc()
    if result.status in MISCONFIGURATION:
        MISCONFIGURED.inc()
