"""Idempotency-Key on the API's POSTs: a retried request gets its first answer again."""

from gateway.idempotency.guard import Answering, Key, Once, answer_alone
from gateway.idempotency.http import (
    NOT_KEPT_FORECAST,
    NOT_KEPT_IMPORT,
    Idem,
    Idempotency,
    checked_key,
    document,
    idempotency,
    install,
)
from gateway.idempotency.rules import HEADER, REPLAYED_HEADER

__all__ = [
    "HEADER",
    "NOT_KEPT_FORECAST",
    "NOT_KEPT_IMPORT",
    "REPLAYED_HEADER",
    "Answering",
    "Idem",
    "Idempotency",
    "Key",
    "Once",
    "answer_alone",
    "checked_key",
    "document",
    "idempotency",
    "install",
]
