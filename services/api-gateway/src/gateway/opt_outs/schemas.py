"""The opt-out endpoints' shapes as the OpenAPI document shows them (the endpoints parse bodies
with ``rules``, so errors keep the old API's 400 shape)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, Field

from gateway.docs import ErrorDetail, json_body, json_content
from gateway.opt_outs.rules import REASON_MAX_LENGTH
from sms_events.contracts import OptOutSource

__all__ = [
    "INBOUND_EXAMPLE",
    "OPT_OUT_EXAMPLE",
    "PAGE_EXAMPLE",
    "InboundAnswer",
    "InboundBody",
    "OptOut",
    "OptOutCreate",
    "OptOutPage",
    "inbound_body",
    "inbound_unauthorized",
    "opt_out_body",
    "opt_out_import_body",
]

OPT_OUT_EXAMPLE: Final = {
    "phone": "79991234567",
    "reason": "asked by phone",
    "source": "api",
    "opted_out_at": "2026-12-03T10:15:00.000000Z",
}
PAGE_EXAMPLE: Final = {"count": 1, "next": None, "previous": None, "results": [OPT_OUT_EXAMPLE]}
INBOUND_EXAMPLE: Final = {"opted_out": True, "stop_word": "stop"}


class OptOut(BaseModel):
    phone: str = Field(examples=["79991234567"])
    reason: str | None = Field(description="Why, as recorded (an inbound stop word's text)")
    source: OptOutSource = Field(description="api, admin, import or inbound")
    opted_out_at: datetime


class OptOutCreate(BaseModel):
    phone: str = Field(description="11 digits starting with 7 (a leading + is dropped)")
    reason: str | None = Field(default=None, max_length=REASON_MAX_LENGTH)


class OptOutPage(BaseModel):
    """One page of the suppression list, newest first."""

    count: int
    next: str | None
    previous: str | None
    results: list[OptOut]


class InboundBody(BaseModel):
    phone: int = Field(description="The sender, 11 digits starting with 7", examples=[79991234567])
    text: str = Field(examples=["STOP"])
    received_at: datetime | None = Field(default=None, description="ISO 8601 with a zone")


class InboundAnswer(BaseModel):
    opted_out: bool = Field(description="Whether the sender is on the list now (a stop word)")
    stop_word: str | None = Field(description="The stop word the text is, if any")


def opt_out_body() -> dict[str, Any]:
    return json_body(
        OptOutCreate,
        {
            "minimal": {"value": {"phone": "79991234567"}},
            "with reason": {"value": {"phone": "+79991234567", "reason": "asked by phone"}},
        },
        required=True,
    )


def inbound_body() -> dict[str, Any]:
    return json_body(
        InboundBody,
        {"stop": {"value": {"phone": 79991234567, "text": "STOP",
                            "received_at": "2026-12-03T10:15:00Z"}}},
        required=True,
    )  # fmt: skip


def opt_out_import_body() -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "phone,reason\n79990000001,complaint\n79990000002,\n",
                },
                "application/x-ndjson": {
                    "schema": {"type": "string"},
                    "example": '{"phone": "79990000001", "reason": "complaint"}\n',
                },
            },
        }
    }


def inbound_unauthorized() -> dict[str, Any]:
    return {
        "model": ErrorDetail,
        "description": "Missing or wrong INBOUND_TOKEN (or none configured)",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "example": "Bearer"}},
        "content": json_content({"detail": "Invalid inbound token."}),
    }
