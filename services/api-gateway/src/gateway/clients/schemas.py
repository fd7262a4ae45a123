"""Request and response shapes of /api/v1/clients/, with the examples shown in /docs.

The request models validate what they document: each field carries its rule (a function of
``gateway.clients.rules``, with the old Django REST framework API's message), and
``parse_change`` judges a body and an import row alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gateway.clients.rules import (
    DEFAULT_TIME_ZONE,
    NOT_AN_OBJECT,
    PHONE_MESSAGE,
    TAG_MAX_LENGTH,
    ClientChange,
    check_phone,
    check_tag,
    check_time_zone,
)
from gateway.docs import ImportErrorRow, json_body
from gateway.fields import given, validate

__all__ = [
    "CLIENT_EXAMPLE",
    "IMPORT_JOB_EXAMPLE",
    "PAGE_EXAMPLE",
    "UPDATED_EXAMPLE",
    "Client",
    "ClientCreate",
    "ClientPage",
    "ClientPatch",
    "ImportJob",
    "client_body",
    "import_body",
    "parse_change",
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


# Each field's rule, bound once for the bodies of POST and PUT, of PATCH, and for import rows.
# The rule runs first and sees every value, null included (pydantic would let a null through an
# optional field unchecked, where the old API says "may not be null").
Phone = Annotated[str, BeforeValidator(check_phone)]
Tag = Annotated[str | None, BeforeValidator(check_tag)]
TimeZone = Annotated[str, BeforeValidator(check_time_zone)]
# PATCH documents its fields as optional (a null is still refused by the rule).
PhoneOrUnset = Annotated[str | None, BeforeValidator(check_phone)]
TimeZoneOrUnset = Annotated[str | None, BeforeValidator(check_time_zone)]


class ClientCreate(BaseModel):
    """Body of POST and PUT. Unknown fields are ignored. PUT leaves out fields unchanged."""

    phone: Phone = Field(
        pattern=PHONE_PATTERN,
        description=f"{PHONE_MESSAGE} A leading + is accepted and dropped; must be unique.",
        examples=["79991234567"],
    )
    tag: Tag = Field(
        default=None,
        max_length=TAG_MAX_LENGTH,
        description="Up to 20 characters; blank or null means no tag",
        examples=["vip"],
    )
    time_zone: TimeZone = Field(
        default=DEFAULT_TIME_ZONE,
        description="IANA time zone name (zoneinfo), used for the client's send window",
        examples=["Europe/Moscow"],
    )


class ClientPatch(BaseModel):
    """Body of PATCH: any subset of the writable fields."""

    phone: PhoneOrUnset = Field(default=None, pattern=PHONE_PATTERN, examples=["79991234567"])
    tag: Tag = Field(default=None, max_length=TAG_MAX_LENGTH, examples=["vip"])
    time_zone: TimeZoneOrUnset = Field(default=None, examples=["Europe/Moscow"])


def parse_change(data: Any, *, require_phone: bool) -> ClientChange:
    """A request body (or an import row) already decoded from JSON or CSV, validated by
    ``ClientCreate`` (``require_phone``) or ``ClientPatch``; fields it left out are ``UNSET``.
    Raises ``InvalidInput`` with every broken rule at once."""
    model = ClientCreate if require_phone else ClientPatch
    return ClientChange(**given(validate(model, data, not_an_object=NOT_AN_OBJECT)))


class ClientPage(BaseModel):
    """One page of clients, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [PAGE_EXAMPLE]})

    count: int = Field(description="Clients matching the filters, on all pages")
    next: str | None = Field(description="URL of the next page")
    previous: str | None = Field(description="URL of the previous page")
    results: list[Client]


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
