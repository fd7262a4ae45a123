"""Idempotency-Key rules: which keys are valid, when two requests are the same one, and what a
stored answer tells a retry. Pure: no I/O (``gateway.idempotency.store`` moves the rows)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "HEADER",
    "KEPT_HEADERS",
    "REPLAYED_HEADER",
    "InvalidKey",
    "KeyInUse",
    "KeyReused",
    "Replayed",
    "Stored",
    "canonical_body",
    "kept_headers",
    "parse_key",
    "replay_of",
    "request_hash",
]

HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
# What a replay must repeat besides status and body: how to read it, and where the new
# resource is. Request ids and the like belong to the retry, not to the first answer.
KEPT_HEADERS: Final = ("content-type", "location")

# Printable ASCII (space to tilde), as the IETF draft's sf-string allows; the length caps what
# a caller can make us store per request.
_KEY: Final = re.compile(r"[\x20-\x7e]{1,255}")


class InvalidKey(ValueError):
    """The header is there but is not a usable key (a 400)."""


class KeyReused(ValueError):
    """The key's stored answer belongs to another request (a 422)."""


class KeyInUse(RuntimeError):
    """A request with this key is still being carried out (a 409, retry later)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """The first answer to a key, as kept for its retries."""

    request_hash: bytes
    status: int
    headers: Mapping[str, str]
    body: bytes


class Replayed(Exception):  # not an error: the answer a retry gets
    """The request was answered before: ``stored`` is the answer to give again."""

    def __init__(self, stored: Stored) -> None:
        super().__init__("replayed")
        self.stored = stored


def parse_key(raw: str | None) -> str | None:
    """The key of an ``Idempotency-Key`` header value (None: no header); raises ``InvalidKey``."""
    if raw is None:
        return None
    if not _KEY.fullmatch(raw):
        raise InvalidKey(f"{HEADER} must be 1 to 255 printable ASCII characters.")
    return raw


def canonical_body(body: Any) -> bytes:
    """A parsed JSON body written one way only (sorted keys, no spaces), so that a retry that
    encodes the same document differently (key order, whitespace) is the same request."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def request_hash(method: str, path: str, body: Any) -> bytes:
    """What makes two requests one: method, path (with or without its trailing slash, which
    the API treats alike) and canonical body."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.rstrip("/").encode(), canonical_body(body)):
        digest.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two splits collide
        digest.update(part)
    return digest.digest()


def replay_of(stored: Stored | None, request_hash: bytes) -> Stored | None:
    """The answer to give again (None: the key is new); raises ``KeyReused`` when the key
    answered another request."""
    if stored is None:
        return None
    if stored.request_hash != request_hash:
        raise KeyReused(
            f"This {HEADER} was used with a different request (method, path or body);"
            " send a new key for a new request."
        )
    return stored


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a first answer that its replays repeat."""
    return {name: headers[name] for name in KEPT_HEADERS if name in headers}
