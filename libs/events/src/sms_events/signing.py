"""Signed envelopes: the services handle only what a holder of the platform's key published.

Anyone with write access to ``sms.events`` could otherwise forge ``mailing.scheduled`` and mail
the whole base. The relay (the only publisher, see sms_events.relay) signs the exact body bytes it
publishes with HMAC-SHA256 and sends the signature in an AMQP header; a consumer checks it over
the exact bytes it received, before it even parses them, so nothing has to be canonicalised and
a body changed by one byte fails. The body carries the event's id, type, source, subject, time
and data, so all of them are covered; the routing key is not, and needs not be: handlers act on
the body's type.

The rejected alternative is asking the event store whether each event exists: one more query per
batch (per delivery for the dispatcher, which holds no transaction), where an HMAC of a body
costs about a microsecond. The signature proves the same thing: only the relay holds the key,
and it publishes only committed events.

Rotation: a new key signs while the old one, listed in ``EVENT_SIGNING_KEYS_PREVIOUS``, is still
accepted until every envelope signed with it is consumed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SIGNATURE_HEADER", "Signer"]

SIGNATURE_HEADER = "sms-signature"
"""The AMQP header carrying ``v1=<hex HMAC-SHA256 of the body>``."""

_SCHEME = "v1="


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs with ``key``; verifies with it or any of ``previous`` (keys being rotated out)."""

    key: bytes
    previous: Sequence[bytes] = ()

    @classmethod
    def of(cls, key: str, previous: Sequence[str] = ()) -> Signer:
        return cls(key.encode(), tuple(k.encode() for k in previous))

    def sign(self, body: bytes) -> str:
        """The header value for ``body``, exactly the bytes that are published."""
        return _SCHEME + _digest(self.key, body)

    def refusal(self, body: bytes, signature: object) -> str | None:
        """Why ``body`` must not be handled (``unsigned``, ``bad signature``), or None.

        Every key is compared, in constant time, so that the time taken says nothing about
        which key or how much of a digest matched."""
        if not isinstance(signature, str | bytes) or not signature:
            return "unsigned"
        given = signature.encode() if isinstance(signature, str) else signature
        matched = False
        for key in (self.key, *self.previous):
            matched |= hmac.compare_digest(given, (_SCHEME + _digest(key, body)).encode())
        return None if matched else "bad signature"


def _digest(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()
