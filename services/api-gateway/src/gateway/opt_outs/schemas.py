"""The opt-out endpoints' shapes as the OpenAPI document shows them. The request models validate
what they document: each field carries its rule from ``rules``, with the old API's message."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, Field

from gateway.clients.rules import normalize_phone
from gateway.docs import ErrorDetail, json_body, json_content
from gateway.fields import validate
from gateway.opt_outs.rules import (
    NOT_AN_OBJECT,
    REASON_MAX_LENGTH,
    InboundMessage,
    OptOutRequest,
    check_inbound_phone,
    check_inbound_text,
    check_phone,
    check_reason,
    check_received_at,
)
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
    "parse_inbound",
    "parse_opt_out",
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


# Body of POST /api/v1/opt-outs/ and a line of an import (a comment: a docstring would show in
# the contract).
class OptOutCreate(BaseModel):
    phone: Annotated[str, BeforeValidator(check_phone)] = Field(
        description="11 digits starting with 7 (a leading + is dropped)"
    )
    reason: Annotated[str | None, BeforeValidator(check_reason)] = Field(
        default=None, max_length=REASON_MAX_LENGTH
    )


class OptOutPage(BaseModel):
    """One page of the suppression list, newest first."""

    count: int
    next: str | None
    previous: str | None
    results: list[OptOut]


class InboundBody(BaseModel):
    phone: Annotated[int, BeforeValidator(check_inbound_phone)] = Field(
        description="The sender, 11 digits starting with 7", examples=[79991234567]
    )
    text: Annotated[str, BeforeValidator(check_inbound_text)] = Field(examples=["STOP"])
    received_at: Annotated[datetime | None, BeforeValidator(check_received_at)] = Field(
        default=None, description="ISO 8601 with a zone"
    )


def parse_opt_out(data: Any) -> OptOutRequest:
    """``{"phone": ..., "reason": ...}`` of ``POST /api/v1/opt-outs/``, an import line or the
    admin's form, validated by ``OptOutCreate``; raises ``InvalidInput`` naming each bad field."""
    body = validate(OptOutCreate, data, not_an_object=NOT_AN_OBJECT)
    return OptOutRequest(body.phone, body.reason)


def parse_inbound(data: Any) -> InboundMessage:
    """The provider's ``{"phone": <int64>, "text": "...", "received_at": "..."}``, validated by
    ``InboundBody``; raises ``InvalidInput`` naming each bad field."""
    body = validate(InboundBody, data, not_an_object=NOT_AN_OBJECT)
    return InboundMessage(normalize_phone(str(body.phone)), body.text, body.received_at)


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
