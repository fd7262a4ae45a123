"""Idempotency-Key on the API's POSTs: a retried request gets its first answer again."""

from gateway.idempotency.guard import Answering, Key, Once, answer_alone
from gateway.idempotency.http import (
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
