"""TRUSTED_HOSTS: a request naming another Host gets 400, so nothing the gateway builds from the
request (and nothing a cache keys on it) can be steered by a forged Host header.

Starlette's ``TrustedHostMiddleware`` does the check; the probe endpoints are exempt, because
Kubernetes' liveness and readiness probes and Prometheus reach a pod by its IP (the Host is
``10.x.y.z:8000``, which no list of names can know in advance), and those endpoints build no
link and reveal nothing a Host could change. The rejected alternative, listing pod IPs or a
wildcard in TRUSTED_HOSTS, would either break on every reschedule or trust every Host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["PROBE_PATHS", "TrustedHosts"]

PROBE_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})


class TrustedHosts:
    """``TrustedHostMiddleware`` for ``hosts`` on every path but the probes'."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app = app
        self.checked = TrustedHostMiddleware(app, allowed_hosts=hosts, www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"] not in PROBE_PATHS:
            await self.checked(scope, receive, send)
        else:
            await self.app(scope, receive, send)
