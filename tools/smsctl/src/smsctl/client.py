"""The REST API on httpx: one method per operation smsctl uses (ids as in docs/openapi.json)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["FINAL_STATES", "ApiError", "Client", "Counters", "ImportJob", "ImportResult"]

# Mailing states after which nothing changes any more.
FINAL_STATES = frozenset({"finished", "cancelled"})
_CHUNK = 64 * 1024


class ApiError(Exception):
    """A non-2xx answer: its status and the body the API explained it with."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Counters:
    """Where a mailing stands: its state and its messages by outcome."""

    state: str
    clients: int
    created: int
    scheduled: int
    delivered: int
    undelivered: int
    cancelled: int

    @classmethod
    def of(cls, mailing: dict[str, Any]) -> Counters:
        return cls(
            state=mailing["state"],
            clients=mailing["clients_count"],
            created=mailing["created_messages"],
            scheduled=mailing["scheduled_messages"],
            delivered=mailing["delivered_messages"],
            undelivered=mailing["undelivered_messages"],
            cancelled=mailing["cancelled_messages"],
        )

    @property
    def done(self) -> int:
        """Messages with a final outcome."""
        return self.delivered + self.undelivered + self.cancelled

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[dict[str, Any]]


@dataclass(frozen=True)
class ImportJob:
    """A background import (`Prefer: respond-async`) as last reported by the gateway."""

    url: str
    state: str
    bytes_total: int
    bytes_read: int
    rows_read: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[dict[str, Any]]
    error: str | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> ImportJob:
        return cls(**{k: body[k] for k in cls.__dataclass_fields__})

    @property
    def final(self) -> bool:
        return self.state != "running"

    def result(self) -> ImportResult:
        return ImportResult(
            created=self.created,
            updated=self.updated,
            unchanged=self.unchanged,
            rejected=self.rejected,
            errors=self.errors,
        )


class Client:
    """The API at `url` with the bearer `key`."""

    def __init__(self, url: str, key: str, *, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._body(self._http.request(method, path, **kwargs))

    @staticmethod
    def _body(response: httpx.Response) -> Any:
        if response.is_error:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise ApiError(response.status_code, body)
        return response.json() if response.content else None

    # clients
    def list_clients(self, page: int = 1, page_size: int = 50) -> dict[str, Any]:
        params = {"page": page, "page_size": page_size}
        result: dict[str, Any] = self._call("GET", "/api/v1/clients/", params=params)
        return result

    def create_client(self, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/api/v1/clients/", json=fields)
        return result

    def import_csv(
        self, path: Path, on_progress: Callable[[int], None] = lambda _: None
    ) -> ImportResult:
        """Stream the file as one import answered when done; `on_progress` gets the bytes of
        each chunk sent."""
        body = self._call(
            "POST",
            "/api/v1/clients/import",
            content=self._chunks(path, on_progress),
            headers={"Content-Type": "text/csv"},
            # A large file is one long request: the server answers when it is all imported.
            timeout=httpx.Timeout(30.0, read=None),
        )
        return ImportResult(**{k: body[k] for k in ImportResult.__dataclass_fields__})

    def start_import(
        self, path: Path, on_progress: Callable[[int], None] = lambda _: None
    ) -> ImportJob | ImportResult:
        """Upload the file as a background import: the job (202), or the result where the
        gateway predates import jobs and imports it within the request (200)."""
        response = self._http.post(
            "/api/v1/clients/import",
            content=self._chunks(path, on_progress),
            headers={"Content-Type": "text/csv", "Prefer": "respond-async"},
            timeout=httpx.Timeout(30.0, read=None),
        )
        body = self._body(response)
        if response.status_code == httpx.codes.ACCEPTED:
            return ImportJob.of(body)
        return ImportResult(**{k: body[k] for k in ImportResult.__dataclass_fields__})

    def import_job(self, url: str) -> ImportJob:
        return ImportJob.of(self._call("GET", url))

    def follow_import(
        self,
        job: ImportJob,
        on_update: Callable[[ImportJob], None] = lambda _: None,
        *,
        interval: float = 0.5,
    ) -> ImportJob:
        """Poll the job every `interval` seconds until it is final; `on_update` sees each."""
        on_update(job)
        while not job.final:
            time.sleep(interval)
            job = self.import_job(job.url)
            on_update(job)
        return job

    @staticmethod
    def _chunks(path: Path, on_progress: Callable[[int], None]) -> Iterator[bytes]:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk
                on_progress(len(chunk))

    # mailings
    def create_mailing(self, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/api/v1/mailings/", json=fields)
        return result

    def preview_mailing(self, **fields: Any) -> dict[str, Any]:
        """The forecast of a mailing with these fields; nothing is stored."""
        result: dict[str, Any] = self._call("POST", "/api/v1/mailings/preview/", json=fields)
        return result

    def get_mailing(self, mailing_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/mailings/{mailing_id}/")
        return result

    def command(self, mailing_id: int, command: str) -> dict[str, Any]:
        """pause, resume or cancel."""
        result: dict[str, Any] = self._call("POST", f"/api/v1/mailings/{mailing_id}/{command}/")
        return result

    # statistics
    def overall_stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/api/v1/stats/")
        return result

    def mailing_stats(self, mailing_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/mailings/{mailing_id}/stats/")
        return result
