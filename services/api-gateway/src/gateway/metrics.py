"""The gateway's Prometheus metrics (the event library's own live in sms_events.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "HTTP_REQUESTS",
    "HTTP_REQUEST_SECONDS",
    "IMPORT_ROWS",
    "INBOUND_MESSAGES",
    "OPT_OUTS",
    "REPORTER_REQUESTS",
    "REPORTER_SECONDS",
]

# Labelled by route template ("/api/v1/clients/{client_id}/"), never the raw path, so the
# number of series stays bounded whatever ids and junk paths clients send.
HTTP_REQUESTS = Counter(
    "gateway_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_REQUEST_SECONDS = Histogram(
    "gateway_http_request_duration_seconds",
    "Time from receiving a request to sending the end of its response",
    ["method", "route", "status"],
    # Up to a minute: a large client import is one request.
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
IMPORT_ROWS = Counter(
    "gateway_import_rows_total",
    "Rows of bulk client imports by outcome (created, updated, unchanged, rejected)",
    ["outcome"],
)
REPORTER_REQUESTS = Counter(
    "gateway_reporter_requests_total",
    "Calls to the reporter's read API by endpoint and outcome (ok, 5xx, unreachable, error)",
    ["endpoint", "outcome"],
)
REPORTER_SECONDS = Histogram(
    "gateway_reporter_request_duration_seconds",
    "Time the reporter took to answer (or to fail)",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OPT_OUTS = Counter(
    "gateway_opt_outs_total",
    "Phones put on the suppression list, by source (api, admin, import, inbound)",
    ["source"],
)
INBOUND_MESSAGES = Counter(
    "gateway_inbound_messages_total",
    "Mobile-originated messages the provider posted, by outcome (opt_out, other)",
    ["outcome"],
)
