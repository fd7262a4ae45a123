"""Request and response shapes of /api/v1/mailings/, with the examples shown in /docs.

The request models validate what they document: each field carries its rule (a function of
``gateway.mailings.rules``, with the old Django REST framework API's message); the rules between
fields and against the mailing's state stay in ``gateway.mailings.rules``. The contract is the
old API's, plus ``state`` and the messages of a mailing.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gateway.docs import BadRequest, ErrorDetail, json_body, json_content
from gateway.fields import given, validate
from gateway.mailings.lifecycle import MailingState
from gateway.mailings.rules import (
    CLIENT_FILTER_MAX_LENGTH,
    END_BEFORE_START,
    NOT_AN_OBJECT,
    STARTED,
    TEXT_MAX_LENGTH,
    MailingChange,
    check_client_filter,
    check_datetime,
    check_statuses,
    check_text,
    check_time,
)
from sms_events.vocabulary import MessageStatus

__all__ = [
    "DETAIL_EXAMPLE",
    "MAILING_EXAMPLE",
    "MESSAGES_EXAMPLE",
    "PAGE_EXAMPLE",
    "PATCHED_EXAMPLE",
    "STATISTICS_UNAVAILABLE",
    "FollowUp",
    "Mailing",
    "MailingCreate",
    "MailingDetail",
    "MailingMessage",
    "MailingMessagePage",
    "MailingPage",
    "MailingPatch",
    "MessageStatus",
    "ResendRequest",
    "documented_errors",
    "mailing_body",
    "parse_change",
    "parse_resend",
]

STATISTICS_UNAVAILABLE: Final = "Statistics are temporarily unavailable; retry later."


# The seed README's examples (its message ids and times), newest first where it listed oldest
# first, and with this API's message fields (attempts, last_error) for celery_task_id.
MAILING_EXAMPLE: Final[dict[str, Any]] = {
    "id": 1,
    "datetime_start": "2024-02-12T12:14:00Z",
    "datetime_end": "2024-03-11T20:15:00Z",
    "send_interval_time_start": None,
    "send_interval_time_end": None,
    "text": "Some text",
    "client_filter": None,
    "clients_count": 0,
    "scheduled_messages": 0,
    "created_messages": 0,
    "delivered_messages": 0,
    "undelivered_messages": 0,
    "cancelled_messages": 0,
    "created_at": "2024-02-14T08:47:43.458076Z",
    "updated_at": "2024-02-14T08:47:43.458082Z",
    "state": "running",
    "encoding": "GSM-7",
    "characters": 9,
    "segments": 1,
    "source_mailing_id": None,
    "source_statuses": None,
}
_DELIVERED: Final[dict[str, Any]] = {
    **MAILING_EXAMPLE,
    "clients_count": 3,
    "created_messages": 3,
    "delivered_messages": 3,
    "state": "finished",
}
_MESSAGES: Final[list[dict[str, Any]]] = [
    {"id": i, "datetime_send": sent, "status": "DL", "mailing_id": 1, "client_id": i,
     "attempts": 1, "last_error": None, "created_at": sent, "updated_at": sent}
    for i, sent in ((3, "2024-02-14T08:47:43.474183Z"), (2, "2024-02-14T08:47:43.470083Z"),
                    (1, "2024-02-14T08:47:43.463026Z"))
]  # fmt: skip
DETAIL_EXAMPLE: Final[dict[str, Any]] = {
    **_DELIVERED,
    "mailing_messages": _MESSAGES,
    "messages_url": "http://localhost:8000/api/v1/mailings/1/messages/",
    "follow_ups": [],
}
PAGE_EXAMPLE: Final[dict[str, Any]] = {
    "count": 3,
    "next": None,
    "previous": None,
    "results": [
        {**_DELIVERED, "id": 3, "datetime_start": "2024-03-12T12:14:00Z",
         "datetime_end": "2024-03-12T20:15:00Z", "text": "Text", "characters": 4,
         "scheduled_messages": 3,
         "delivered_messages": 0, "created_at": "2024-02-14T08:49:17.021904Z",
         "updated_at": "2024-02-14T08:49:17.021909Z", "state": "scheduled"},
        {**_DELIVERED, "id": 2, "datetime_end": "2024-03-12T20:15:00Z", "text": "Text",
         "characters": 4,
         "created_at": "2024-02-14T08:48:46.213404Z", "updated_at": "2024-02-14T08:48:46.213410Z"},
        _DELIVERED,
    ],
}  # fmt: skip
PATCHED_EXAMPLE: Final[dict[str, Any]] = {
    **PAGE_EXAMPLE["results"][0],
    "client_filter": "123, tag",
    "updated_at": "2024-02-14T09:10:16.447850Z",
}
MESSAGES_EXAMPLE: Final[dict[str, Any]] = {
    "count": 3,
    "next": "http://localhost:8000/api/v1/mailings/1/messages/?page_size=2&cursor=YmVmb3JlOjI",
    "previous": None,
    "results": _MESSAGES[:2],
}


# Each field's rule (a function of ``gateway.mailings.rules``), bound once for the bodies of
# POST and PUT, of PATCH, of a resend and of a forecast. The rule runs first and sees every
# value, null included (pydantic would let a null through an optional field unchecked).
Moment = Annotated[datetime, BeforeValidator(check_datetime)]
MomentOrUnset = Annotated[datetime | None, BeforeValidator(check_datetime)]
Text = Annotated[str, BeforeValidator(check_text)]
TextOrUnset = Annotated[str | None, BeforeValidator(check_text)]
WindowBound = Annotated[time | None, BeforeValidator(check_time)]
ClientFilter = Annotated[str | None, BeforeValidator(check_client_filter)]


class MailingMessage(BaseModel):
    """One message of a mailing: one per recipient, kept through every retry."""

    id: int = Field(description="Stable id; also the id the SMS provider sees")
    datetime_send: datetime = Field(
        description="When it is due (SC), was sent (DL), or failed for good (ND)"
    )
    status: MessageStatus = Field(
        description="SC scheduled, DL delivered, ND not delivered, CA cancelled"
    )
    mailing_id: int
    client_id: int
    attempts: int = Field(description="Calls to the SMS provider so far")
    last_error: str | None = Field(description="Why the last attempt failed, if it did")
    created_at: datetime
    updated_at: datetime


class Mailing(BaseModel):
    """A mailing as the API returns it; the counters come from the reporter."""

    model_config = ConfigDict(json_schema_extra={"examples": [MAILING_EXAMPLE]})

    id: int = Field(description="Assigned by the server; never reused")
    datetime_start: datetime
    datetime_end: datetime
    send_interval_time_start: time | None = Field(
        description="Start of each client's local send window, HH:MM:SS", examples=["09:00:00"]
    )
    send_interval_time_end: time | None = Field(
        description="End of the window (exclusive); before the start: crosses midnight"
    )
    text: str
    client_filter: str | None = Field(
        description="Comma-separated operator codes and tags; null: every client",
        examples=["999, vip"],
    )
    clients_count: int = Field(description="Recipients the audience resolved to")
    scheduled_messages: int = Field(description="Messages not sent yet (SC)")
    created_messages: int = Field(description="Messages of the mailing, any status")
    delivered_messages: int = Field(description="DL")
    undelivered_messages: int = Field(description="ND: rejected, or retries ran out")
    cancelled_messages: int = Field(description="CA: the mailing was cancelled or ended")
    created_at: datetime
    updated_at: datetime
    state: MailingState = Field(
        description="scheduled (before the start), running, paused, finished (end reached, "
        "or every message final), cancelled"
    )
    encoding: Literal["GSM-7", "UCS-2"] = Field(
        description="How the text is sent: GSM-7 when the GSM 03.38 alphabet writes it all"
    )
    characters: int = Field(
        description="The text's length in its encoding: GSM-7 septets (the extension table "
        "^{}[]~|\\€ counts double) or UTF-16 code units"
    )
    segments: int = Field(
        description="SMS parts each message takes: 160/153 septets or 70/67 units per part"
    )
    source_mailing_id: int | None = Field(
        default=None, description="A follow-up (resend): the mailing whose recipients it retries"
    )
    source_statuses: list[Literal["ND", "CA"]] | None = Field(
        default=None, description="A follow-up: the statuses of the original's messages it retries"
    )


class FollowUp(BaseModel):
    """A follow-up of a mailing, with its own outcome."""

    id: int
    source_statuses: list[Literal["ND", "CA"]]
    datetime_start: datetime
    state: MailingState
    clients_count: int
    scheduled_messages: int
    created_messages: int
    delivered_messages: int
    undelivered_messages: int
    cancelled_messages: int


class MailingDetail(Mailing):
    model_config = ConfigDict(json_schema_extra={"examples": [DETAIL_EXAMPLE]})

    mailing_messages: list[MailingMessage] = Field(description="The newest 100 messages")
    messages_url: str = Field(description="Every message, paginated and filterable by status")
    follow_ups: list[FollowUp] = Field(
        description="Its first 100 follow-ups (POST .../resend/), oldest first, with their outcome"
    )


class ResendRequest(BaseModel):
    """Body of POST /{id}/resend/ (may be empty): which recipients, and what to change."""

    statuses: Annotated[list[Literal["ND", "CA"]], BeforeValidator(check_statuses)] = Field(
        default=["ND"], description="Final statuses of the original's messages to send again"
    )
    text: TextOrUnset = Field(default=None, description="Default: the original's text")
    datetime_start: MomentOrUnset = Field(default=None, description="Default: now")
    datetime_end: MomentOrUnset = Field(
        default=None, description="Default: the start plus the original's duration"
    )
    send_interval_time_start: WindowBound = Field(
        default=None, description="Default (with the end): the original's window"
    )
    send_interval_time_end: WindowBound = None


def parse_resend(data: Any) -> tuple[list[str], MailingChange]:
    """A resend request (``ResendRequest``; an empty or null body is ``{}``): the statuses of
    the original's messages to send again (default ``["ND"]``) and the fields it overrides
    (``client_filter`` is not one: the audience is the original's recipients). Raises
    ``InvalidInput`` with every broken rule at once."""
    body = validate(ResendRequest, {} if data is None else data, not_an_object=NOT_AN_OBJECT)
    fields = given(body)
    statuses = fields.pop("statuses", ["ND"])
    return statuses, MailingChange(**fields)


class MailingPage(BaseModel):
    """One page of mailings, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [PAGE_EXAMPLE]})

    count: int
    next: str | None = Field(description="URL of the next page")
    previous: str | None = Field(description="URL of the previous page")
    results: list[Mailing]


class MailingMessagePage(BaseModel):
    """One page of a mailing's messages, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [MESSAGES_EXAMPLE]})

    count: int = Field(description="Messages matching the status filter, on all pages")
    next: str | None = Field(description="The older messages (a `cursor`); null on the last page")
    previous: str | None = Field(
        description="The newer messages (a `cursor`); null on the first page"
    )
    results: list[MailingMessage]


class MailingCreate(BaseModel):
    """Body of POST and PUT. Unknown and read-only fields are ignored; PUT keeps optional
    fields it leaves out."""

    datetime_start: Moment = Field(
        description="ISO 8601; without a zone it is UTC. May be in the past: sending starts "
        "at once",
        examples=["2024-02-12T12:14:00Z"],
    )
    datetime_end: Moment = Field(
        description="After datetime_start and in the future; nothing is sent from then on",
        examples=["2024-03-11T20:15:00Z"],
    )
    text: Text = Field(
        min_length=1, max_length=TEXT_MAX_LENGTH, description="Trimmed; may not be blank"
    )
    send_interval_time_start: WindowBound = Field(
        default=None,
        description="HH:MM or HH:MM:SS, each client's local time; give both bounds or neither",
        examples=["09:00"],
    )
    send_interval_time_end: WindowBound = Field(
        default=None,
        description="HH:MM or HH:MM:SS; not equal to the start. 22:00-06:00 crosses midnight",
        examples=["21:00"],
    )
    client_filter: ClientFilter = Field(
        default=None,
        max_length=CLIENT_FILTER_MAX_LENGTH,
        description="Comma-separated operator codes and tags (a client matching any one "
        "receives it); stored trimmed; blank or null: every client",
        examples=["999, vip"],
    )


class MailingPatch(BaseModel):
    """Body of PATCH: any subset of the writable fields. After the start only datetime_end."""

    datetime_start: MomentOrUnset = Field(default=None, examples=["2024-02-12T12:14:00Z"])
    datetime_end: MomentOrUnset = Field(default=None, examples=["2024-03-11T20:15:00Z"])
    text: TextOrUnset = Field(default=None, max_length=TEXT_MAX_LENGTH)
    send_interval_time_start: WindowBound = Field(default=None, examples=["09:00"])
    send_interval_time_end: WindowBound = Field(default=None, examples=["21:00"])
    client_filter: ClientFilter = Field(default=None, max_length=CLIENT_FILTER_MAX_LENGTH)


def parse_change(data: Any, *, require: bool) -> MailingChange:
    """A decoded JSON body validated by ``MailingCreate`` (``require``: POST, PUT) or
    ``MailingPatch``; fields it left out are ``UNSET``. Unknown keys (read-only ones such as
    ``id`` or the counters among them) are ignored, as Django REST framework does. Raises
    ``InvalidInput`` with every broken rule at once."""
    model = MailingCreate if require else MailingPatch
    return MailingChange(**given(validate(model, data, not_an_object=NOT_AN_OBJECT)))


def mailing_body(*, partial: bool) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON mailing body (the endpoints parse it themselves)."""
    model = MailingPatch if partial else MailingCreate
    examples = (
        {
            "change the filter": {"value": {"client_filter": "123, tag"}},
            "move the end (also after the start)": {
                "value": {"datetime_end": "2024-03-12T20:15:00Z"}
            },
        }
        if partial
        else {
            "seed example": {
                "value": {
                    "datetime_start": "2024-02-12T12:14:00Z",
                    "datetime_end": "2024-03-11T20:15:00Z",
                    "text": "Some text",
                }
            },
            "all fields": {
                "value": {
                    "datetime_start": "2024-03-12T12:14:00+03:00",
                    "datetime_end": "2024-03-12T20:15:00+03:00",
                    "send_interval_time_start": "09:00",
                    "send_interval_time_end": "21:00:00",
                    "text": "Text",
                    "client_filter": "123, tag",
                }
            },
        }
    )
    return json_body(model, examples, required=not partial)


def documented_errors() -> dict[int, dict[str, Any]]:
    """How the mailing endpoints document their error answers (401, 413, 415 as for clients)."""
    return {
        400: {
            "model": BadRequest,
            "description": "Invalid input (each bad field with its messages), or a change the "
            "mailing's state refuses (`detail` says why); nothing was stored",
            "content": json_content(
                examples={
                    "invalid field": {"value": {"datetime_end": [END_BEFORE_START]}},
                    "started": {"value": {"detail": STARTED}},
                    "state refuses the command": {
                        "value": {"detail": "A cancelled mailing cannot be resumed."}
                    },
                    "malformed JSON": {
                        "value": {"detail": "JSON parse error - unexpected character: line 1"}
                    },
                }
            ),
        },
        404: {
            "model": ErrorDetail,
            "description": "No such mailing (or no such page)",
            "content": json_content({"detail": "Not found."}),
        },
        409: {
            "model": ErrorDetail,
            "description": "The mailing kept changing concurrently; retry the request",
            "content": json_content(
                {"detail": "The mailing was changed by another request at the same time; retry."}
            ),
        },
        503: {
            "model": ErrorDetail,
            "description": "The statistics (reporter) cannot be reached; retry after Retry-After",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "example": 5}},
            "content": json_content({"detail": STATISTICS_UNAVAILABLE}),
        },
    }
