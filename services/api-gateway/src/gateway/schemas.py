"""Request and response shapes of /api/v1/, with the examples shown in /docs.

Validation itself lives in ``gateway.domain`` (the importer needs the same rules); these models
document the contract, which is the old Django REST framework API's, field for field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, RootModel

from gateway.domain import DEFAULT_TIME_ZONE, PHONE_MESSAGE, TAG_MAX_LENGTH

__all__ = [
    "IMPORT_LIMIT_ERRORS",
    "BadRequest",
    "Client",
    "ClientCreate",
    "ClientPage",
    "ClientPatch",
    "ErrorDetail",
    "ImportErrorRow",
    "ImportResult",
    "Readiness",
    "Status",
    "client_body",
    "import_body",
    "json_body",
    "json_content",
    "responses",
]

CLIENT_EXAMPLE: Final[dict[str, Any]] = {
    "id": 1,
    "phone": "71230000001",
    "operator_code": "123",
    "tag": None,
    "time_zone": "UTC",
    "created_at": "2024-02-14T08:42:49.704376Z",
    "updated_at": "2024-02-14T08:42:49.704405Z",
}
UPDATED_EXAMPLE: Final[dict[str, Any]] = {
    **CLIENT_EXAMPLE,
    "time_zone": "Europe/Moscow",
    "updated_at": "2024-02-14T08:44:59.111742Z",
}
PAGE_EXAMPLE: Final[dict[str, Any]] = {
    "count": 3,
    "next": None,
    "previous": None,
    "results": [
        {**CLIENT_EXAMPLE, "id": 3, "phone": "71230000003",
         "created_at": "2024-02-14T08:45:34.457324Z", "updated_at": "2024-02-14T08:45:34.457354Z"},
        {**CLIENT_EXAMPLE, "id": 2, "phone": "71230000002",
         "created_at": "2024-02-14T08:45:30.556096Z", "updated_at": "2024-02-14T08:45:30.556111Z"},
        UPDATED_EXAMPLE,
    ],
}  # fmt: skip
PHONE_PATTERN: Final = r"^\+?7[0-9]{10}$"


class Client(BaseModel):
    """A client as the API returns it."""

    model_config = ConfigDict(json_schema_extra={"examples": [CLIENT_EXAMPLE]})

    id: int = Field(description="Assigned by the server; never reused")
    phone: str = Field(description="11 digits starting with 7", examples=["71230000001"])
    operator_code: str = Field(description="Digits 2-4 of the phone (derived)", examples=["123"])
    tag: str | None = Field(description="Free label for selecting clients in mailings")
    time_zone: str = Field(description="IANA time zone name", examples=["Europe/Moscow"])
    created_at: datetime
    updated_at: datetime


class ClientCreate(BaseModel):
    """Body of POST and PUT. Unknown fields are ignored. PUT leaves out fields unchanged."""

    phone: str = Field(
        pattern=PHONE_PATTERN,
        description=f"{PHONE_MESSAGE} A leading + is accepted and dropped; must be unique.",
        examples=["79991234567"],
    )
    tag: str | None = Field(
        default=None,
        max_length=TAG_MAX_LENGTH,
        description="Up to 20 characters; blank or null means no tag",
        examples=["vip"],
    )
    time_zone: str = Field(
        default=DEFAULT_TIME_ZONE,
        description="IANA time zone name (zoneinfo), used for the client's send window",
        examples=["Europe/Moscow"],
    )


class ClientPatch(BaseModel):
    """Body of PATCH: any subset of the writable fields."""

    phone: str | None = Field(default=None, pattern=PHONE_PATTERN, examples=["79991234567"])
    tag: str | None = Field(default=None, max_length=TAG_MAX_LENGTH, examples=["vip"])
    time_zone: str | None = Field(default=None, examples=["Europe/Moscow"])


class ClientPage(BaseModel):
    """One page of clients, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [PAGE_EXAMPLE]})

    count: int = Field(description="Clients matching the filters, on all pages")
    next: str | None = Field(description="URL of the next page")
    previous: str | None = Field(description="URL of the previous page")
    results: list[Client]


class ErrorDetail(BaseModel):
    detail: str


class BadRequest(RootModel[dict[str, list[str]] | ErrorDetail]):
    """Either each invalid field with its messages, or ``detail`` for an unreadable body."""


class ImportErrorRow(BaseModel):
    line: int = Field(description="1-based line number in the file (a header row counts)")
    errors: dict[str, list[str]]


class ImportResult(BaseModel):
    created: int
    updated: int
    unchanged: int = Field(description="Rows equal to the stored client: nothing written")
    rejected: int
    errors: list[ImportErrorRow] = Field(description="The first 1000 rejected rows")


class ImportJob(BaseModel):
    id: str = Field(description="The job's id (a UUID)")
    url: str = Field(description="Where to GET the job")
    state: str = Field(description="`running`, `succeeded` or `failed`")
    format: str = Field(description="`csv` or `ndjson`")
    bytes_total: int = Field(description="Size of the upload")
    bytes_read: int = Field(description="Bytes of the upload the importer has read so far")
    rows_read: int = Field(description="Lines read so far, blank and header lines included")
    created: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[ImportErrorRow] = Field(description="The first 1000 rejected rows so far")
    error: str | None = Field(description="Why the job failed; null otherwise")
    created_at: datetime
    finished_at: datetime | None


class Status(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    database: bool
    broker: bool


IMPORT_EXAMPLE: Final[dict[str, Any]] = {
    "created": 99_998,
    "updated": 1,
    "unchanged": 0,
    "rejected": 1,
    "errors": [{"line": 7, "errors": {"phone": [PHONE_MESSAGE]}}],
}


IMPORT_JOB_EXAMPLE: Final[dict[str, Any]] = {
    "id": "0b6f3a52-5e0e-4c5b-9d55-4bb0d1f6a2c1",
    "url": "https://sms.example.com/api/v1/clients/import/jobs/0b6f3a52-5e0e-4c5b-9d55-4bb0d1f6a2c1",
    "state": "running",
    "format": "csv",
    "bytes_total": 3_400_000,
    "bytes_read": 1_700_000,
    "rows_read": 50_000,
    "created": 44_999,
    "updated": 0,
    "unchanged": 0,
    "rejected": 1,
    "errors": [{"line": 7, "errors": {"phone": [PHONE_MESSAGE]}}],
    "error": None,
    "created_at": "2026-01-05T09:00:00Z",
    "finished_at": None,
}


def client_body(*, partial: bool) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON client body (the endpoints parse it themselves)."""
    model = ClientPatch if partial else ClientCreate
    examples = (
        {"change time zone": {"value": {"time_zone": "Europe/Moscow"}}}
        if partial
        else {
            "minimal": {"value": {"phone": "71230000001"}},
            "all fields": {
                "value": {"phone": "+79991234567", "tag": "vip", "time_zone": "Europe/Moscow"}
            },
        }
    )
    return json_body(model, examples, required=not partial)


def json_body(
    model: type[BaseModel], examples: dict[str, Any], *, required: bool
) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body of ``model`` (endpoints parse it themselves)."""
    return {
        "requestBody": {
            "required": required,
            "content": {
                "application/json": {"schema": model.model_json_schema(), "examples": examples}
            },
        }
    }


def import_body() -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "phone,tag,time_zone\n"
                    "79990000001,vip,Europe/Moscow\n79990000002,,\n",
                },
                "application/x-ndjson": {
                    "schema": {"type": "string"},
                    "example": '{"phone": "79990000001", "tag": "vip"}\n'
                    '{"phone": "79990000002", "time_zone": "Asia/Omsk"}\n',
                },
            },
        }
    }


def json_content(example: Any = None, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"example": example} if examples is None else {"examples": examples}
    return {"application/json": body}


_ERRORS: Final[dict[int, dict[str, Any]]] = {
    400: {
        "model": BadRequest,
        "description": "Invalid input: each bad field with its messages; nothing was stored",
        "content": json_content(
            examples={
                "invalid field": {"value": {"phone": [PHONE_MESSAGE]}},
                "duplicate phone": {
                    "value": {"phone": ["A client with this phone already exists."]}
                },
                "malformed JSON": {
                    "value": {"detail": "JSON parse error - unexpected character: line 1 column 2"}
                },
            }
        ),
    },
    401: {
        "model": ErrorDetail,
        "description": "Missing or wrong API key",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "example": "Bearer"}},
        "content": json_content({"detail": "Invalid API key."}),
    },
    403: {
        "model": ErrorDetail,
        "description": "The API key lacks the scope this operation needs (named in `detail`)",
        "content": json_content({"detail": "The API key 'crm' lacks the scope 'mailings:write'."}),
    },
    404: {
        "model": ErrorDetail,
        "description": "No such client (or no such page)",
        "content": json_content({"detail": "Not found."}),
    },
    409: {
        "model": ErrorDetail,
        "description": "The client kept changing concurrently; retry the request",
        "content": json_content({"detail": "The client was changed by another request; retry."}),
    },
    413: {
        "model": ErrorDetail,
        "description": "Body larger than 64 KiB",
        "content": json_content({"detail": "Request body too large (limit 65536 bytes)."}),
    },
    415: {
        "model": ErrorDetail,
        "description": "Unsupported Content-Type",
        "content": json_content({"detail": 'Unsupported media type "text/plain" in request.'}),
    },
}


# The caps of every bulk import (clients and opt-outs alike).
IMPORT_LIMIT_ERRORS: Final[dict[int, dict[str, Any]]] = {
    413: {
        "model": ErrorDetail,
        "description": "Over IMPORT_MAX_BYTES or IMPORT_MAX_ROWS (named in `detail`); a body "
        "over the byte cap by its Content-Length is not read, and past the line cap the "
        "batches before it stay imported",
        "content": json_content(
            {"detail": "The import is larger than 2,000,000 lines (IMPORT_MAX_ROWS)."}
        ),
    },
    429: {
        "model": ErrorDetail,
        "description": "IMPORT_MAX_CONCURRENT imports are running; try again after Retry-After",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "example": 10}},
        "content": json_content(
            {
                "detail": "4 import(s) are already running "
                "(IMPORT_MAX_CONCURRENT); try again shortly."
            }
        ),
    },
}


def responses(
    success: int,
    example: Any,
    model: type[BaseModel] | None,
    *errors: int,
    documented: Mapping[int, dict[str, Any]] | None = None,
    description: str = "Success",
) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of an operation: its success with an example, 401 and 403 (every
    operation needs a key with a scope), then ``errors``, each as ``documented`` (per status)
    or else as the client endpoints document it."""
    ok: dict[str, Any] = {"description": description}
    if model is not None:
        ok |= {"model": model, "content": json_content(example)}
    table = {**_ERRORS, **(documented or {})}
    return {success: ok, **{code: table[code] for code in (401, 403, *errors)}}
