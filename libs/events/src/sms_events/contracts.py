"""Event payload models: the one definition of every event on the stream."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "OPTED_OUT",
    "RESENDABLE_STATUSES",
    "SCHEDULED_CLIENT_FIELDS",
    "ClientCreated",
    "ClientDeleted",
    "ClientUpdated",
    "ClientsImported",
    "Event",
    "ImportedClient",
    "ImportedOptOut",
    "OptOutRecorded",
    "OptOutRemoved",
    "OptOutSource",
    "OptOutsImported",
    "ResendableStatus",
    "UnknownEventType",
    "event_class",
    "registered_events",
    "upcast",
]


class UnknownEventType(LookupError):
    """An envelope names a type this version of the contracts does not know."""


class Event(BaseModel):
    """Base of every event payload.

    Subclasses set ``event_type`` (dotted, lower-case, past tense: it is also the RabbitMQ
    routing key) and ``schema_version``. Adding an optional field keeps the version; a breaking
    change bumps it and registers an upcaster from the previous version.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    stream_category: ClassVar[str]
    description: ClassVar[str] = ""

    def stream_id(self) -> str:
        """The stream this event belongs to, written ``category-id``."""
        return f"{self.stream_category}-{self._stream_key()}"

    def _stream_key(self) -> str:
        raise NotImplementedError


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_REGISTRY: dict[str, type[Event]] = {}
# (type, from_version) -> function turning a payload of that version into the next one.
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register(cls: type[Event]) -> type[Event]:
    """Class decorator adding an event model to the registry under its type name."""
    if cls.event_type in _REGISTRY:
        raise ValueError(f"event type {cls.event_type!r} registered twice")
    _REGISTRY[cls.event_type] = cls
    return cls


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function that turns a ``from_version`` payload into ``from_version + 1``."""

    def decorate(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(event_type, from_version)] = fn
        return fn

    return decorate


def event_class(event_type: str) -> type[Event]:
    """The model registered for ``event_type``."""
    try:
        return _REGISTRY[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def registered_events() -> list[type[Event]]:
    """Every registered event model, sorted by type name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def upcast(event_type: str, version: int, data: dict[str, Any]) -> Event:
    """Parse a stored or received payload, upgrading old schema versions on the way."""
    cls = event_class(event_type)
    while version < cls.schema_version:
        data = _UPCASTERS[(event_type, version)](data)
        version += 1
    return cls.model_validate(data)


# --- clients ---------------------------------------------------------------------------------


class _ClientEvent(Event):
    stream_category: ClassVar[str] = "client"

    client_id: int = Field(description="Integer id of the client, as in the REST API")

    def _stream_key(self) -> str:
        return str(self.client_id)


# A client's fields, as single-client events and import batches both carry them.
_Phone = Annotated[str, Field(description="11 digits starting with 7", examples=["79991234567"])]
_OperatorCode = Annotated[str, Field(description="Digits 2-4 of the phone", examples=["999"])]
_Tag = Annotated[str | None, Field(max_length=20)]
_TimeZone = Annotated[str, Field(description="IANA time zone name", examples=["Europe/Moscow"])]


class _ClientState(_ClientEvent):
    phone: _Phone
    operator_code: _OperatorCode
    tag: _Tag = None
    time_zone: _TimeZone
    updated_at: datetime


@register
class ClientCreated(_ClientState):
    event_type: ClassVar[str] = "client.created"
    description: ClassVar[str] = "A client was added to the base."


@register
class ClientUpdated(_ClientState):
    event_type: ClassVar[str] = "client.updated"
    description: ClassVar[str] = "A client's fields changed; the payload is the full new state."


@register
class ClientDeleted(_ClientEvent):
    event_type: ClassVar[str] = "client.deleted"
    description: ClassVar[str] = "A client was removed from the base."

    deleted_at: datetime


# A bulk import carries its clients in batches (a few hundred per event), each event a stream of
# its own, import-<batch id>, like the hot path's message batches below: 100,000 imported
# clients are a few hundred events, which projections apply set-based. A client's version goes
# on across both kinds of event: an import moves it from n to n + 1 inside the batch (the item's
# ``version``), and the next command appends n + 2 to client-<id>, whose stream therefore has
# no event at the versions an import wrote.


class ImportedClient(BaseModel):
    model_config = ConfigDict(frozen=True)

    client_id: int = Field(description="Integer id of the client, as in the REST API")
    version: int = Field(
        ge=1,
        description=(
            "The client's version after the import: the same sequence as the client-<id> "
            "stream's versions (apply an item only over an older version)"
        ),
    )
    created: bool = Field(description="True for a new client, false for an updated one")
    phone: _Phone
    operator_code: _OperatorCode
    tag: _Tag = None
    time_zone: _TimeZone


@register
class ClientsImported(Event):
    event_type: ClassVar[str] = "clients.imported"
    stream_category: ClassVar[str] = "import"
    description: ClassVar[str] = (
        "A bulk import created or updated these clients (up to a few hundred per event; each "
        "item is the client's full new state at its version). Imported changes are not also "
        "published as client.created/client.updated: consumers of client.* bind this too."
    )

    batch_id: str = Field(description="Unique per batch (a UUID)")
    imported_at: datetime = Field(description="When the import wrote these clients")
    clients: list[ImportedClient]

    def _stream_key(self) -> str:
        return self.batch_id


# --- opt-outs (appended by the gateway) ----------------------------------------------------
# The suppression list: a phone on it gets no message. Each phone's changes are versioned like a
# client's (the gateway's row counts them, on stream opt_out-<phone> for single changes and as
# items of opt_outs.imported batches), so a projection keeps the newest version per phone and
# needs no ordering across streams or replicas.

OPTED_OUT: Final = "opted_out"
"""The reason of messages.cancelled (status CA) for messages whose phone opted out."""

OptOutSource = Literal["api", "admin", "import", "inbound"]


class _OptOutEvent(Event):
    stream_category: ClassVar[str] = "opt_out"

    phone: _Phone

    def _stream_key(self) -> str:
        return self.phone


@register
class OptOutRecorded(_OptOutEvent):
    event_type: ClassVar[str] = "opt_out.recorded"
    description: ClassVar[str] = (
        "A phone joined the suppression list: it is left out of every audience, and its "
        "unsent messages end CA with reason opted_out before any call."
    )

    reason: str | None = Field(default=None, max_length=200, examples=["STOP"])
    source: OptOutSource = Field(description="Who recorded it: api, admin, import or inbound")
    opted_out_at: datetime


@register
class OptOutRemoved(_OptOutEvent):
    event_type: ClassVar[str] = "opt_out.removed"
    description: ClassVar[str] = (
        "A phone left the suppression list: mailings not started yet take it in again."
    )

    removed_at: datetime


class ImportedOptOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    phone: _Phone
    version: int = Field(
        ge=1,
        description="The phone's opt-out version after the import (the opt_out-<phone> "
        "stream's sequence: apply an item only over an older version)",
    )
    reason: str | None = Field(default=None, max_length=200)


@register
class OptOutsImported(Event):
    event_type: ClassVar[str] = "opt_outs.imported"
    stream_category: ClassVar[str] = "opt_out_import"
    description: ClassVar[str] = (
        "A bulk import put these phones on the suppression list (up to a few hundred per "
        "event; phones already on it are not repeated). Not also published as "
        "opt_out.recorded: consumers of opt_out.* bind this too."
    )

    batch_id: str = Field(description="Unique per batch (a UUID)")
    opted_out_at: datetime
    opt_outs: list[ImportedOptOut]

    def _stream_key(self) -> str:
        return self.batch_id


# --- mailings (appended by the gateway to stream mailing-<id>) ---------------------------------


class _MailingEvent(Event):
    stream_category: ClassVar[str] = "mailing"

    mailing_id: int

    def _stream_key(self) -> str:
        return str(self.mailing_id)


# The final statuses whose recipients a follow-up mailing may send to again: ND (not
# delivered) and CA (cancelled). The gateway validates requests with them and the scheduler
# maps them to its message states.
ResendableStatus = Literal["ND", "CA"]
RESENDABLE_STATUSES: Final[tuple[ResendableStatus, ...]] = ("ND", "CA")


class _MailingState(_MailingEvent):
    text: str = Field(min_length=1)
    datetime_start: datetime
    datetime_end: datetime
    send_interval_time_start: time | None = Field(
        default=None, description="Start of the clients' local send window (inclusive)"
    )
    send_interval_time_end: time | None = Field(
        default=None, description="End of the clients' local send window (exclusive)"
    )
    client_filter: str | None = Field(
        default=None, description="Comma-separated operator codes and tags; empty means all"
    )
    updated_at: datetime
    source_mailing_id: int | None = Field(
        default=None,
        description="A follow-up: its audience is this mailing's recipients whose messages "
        "ended in source_statuses (not a filter on the base); null for an ordinary mailing",
    )
    source_statuses: list[ResendableStatus] | None = Field(
        default=None, description="With source_mailing_id: ND and/or CA"
    )


@register
class MailingScheduled(_MailingState):
    event_type: ClassVar[str] = "mailing.scheduled"
    description: ClassVar[str] = "A mailing was created and will start at datetime_start."


@register
class MailingUpdated(_MailingState):
    event_type: ClassVar[str] = "mailing.updated"
    description: ClassVar[str] = (
        "A mailing changed (any field before its start, only datetime_end after); full new state."
    )


@register
class MailingDeleted(_MailingEvent):
    event_type: ClassVar[str] = "mailing.deleted"
    description: ClassVar[str] = "A mailing was deleted before its start; nothing will be sent."

    deleted_at: datetime


@register
class MailingCancelled(_MailingEvent):
    event_type: ClassVar[str] = "mailing.cancelled"
    description: ClassVar[str] = "A mailing was stopped; its unsent messages become cancelled."

    cancelled_at: datetime


@register
class MailingPaused(_MailingEvent):
    event_type: ClassVar[str] = "mailing.paused"
    description: ClassVar[str] = "Sending is held until the mailing is resumed."

    paused_at: datetime


@register
class MailingResumed(_MailingEvent):
    event_type: ClassVar[str] = "mailing.resumed"
    description: ClassVar[str] = "Sending of a paused mailing goes on."

    resumed_at: datetime


# --- messages ----------------------------------------------------------------------------------
# The hot path carries messages in batches (one event per up to a few hundred messages of one
# mailing): a million-recipient mailing is thousands of events, not millions. Each batch is its
# own stream, schedule-<mailing id>-<batch id> or dispatch-<mailing id>-<batch id>, so that
# scheduler and dispatcher replicas never contend for stream versions.


class _MailingBatch(Event):
    mailing_id: int
    batch_id: str = Field(description="Unique per batch (a UUID)")

    def _stream_key(self) -> str:
        return f"{self.mailing_id}-{self.batch_id}"


def _is_none(value: object) -> bool:
    return value is None


class ScheduledMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: int = Field(description="Stable id; also the provider's msgId on every attempt")
    client_id: int
    due_at: datetime = Field(description="When it is to be sent (inside the client's window)")
    closes_at: datetime | None = Field(
        default=None,
        description=(
            "The close of the window occurrence it was timed for (or the mailing's end): "
            "missed, it waits for the client's next window"
        ),
    )
    # The client's values when it was scheduled, for the statistics by dimension; carried by
    # messages.scheduled only (a reschedule keeps the message's first values). Events recorded
    # before they were carried have none: operator_code null means unknown. Left out of the
    # payload when null, so reschedules are no bigger for them.
    operator_code: str | None = Field(
        default=None,
        exclude_if=_is_none,
        description="The client's operator code when the message was scheduled",
    )
    tag: str | None = Field(
        default=None, exclude_if=_is_none, description="The client's tag then (absent: none)"
    )
    time_zone: str | None = Field(
        default=None, exclude_if=_is_none, description="The client's time zone then"
    )
    # A retry (messages.rescheduled after a failed attempt): the message is waiting again, with
    # the provider calls made so far and its last error, as the scheduler recorded them. Absent
    # on any other (re)schedule, and on retries recorded before they were carried (a rebuild
    # then keeps the message's previous values).
    attempts: int | None = Field(
        default=None,
        exclude_if=_is_none,
        description="A retry: provider calls made so far (the message waits again)",
    )
    last_error: str | None = Field(
        default=None, exclude_if=_is_none, description="A retry: the message's last error"
    )


SCHEDULED_CLIENT_FIELDS: Final = ("operator_code", "tag", "time_zone")
"""The client's fields a ``ScheduledMessage`` carries as they were when it was scheduled."""


@register
class MessagesScheduled(_MailingBatch):
    event_type: ClassVar[str] = "messages.scheduled"
    stream_category: ClassVar[str] = "schedule"
    description: ClassVar[str] = "Recipients were resolved: each gets one message with a due time."

    messages: list[ScheduledMessage]


@register
class MailingAudienceResolved(_MailingBatch):
    event_type: ClassVar[str] = "mailing.audience_resolved"
    stream_category: ClassVar[str] = "schedule"
    description: ClassVar[str] = (
        "The scheduler resolved the mailing's recipients against the whole client base (at "
        "creation and after each edit before the start); recipients is the audience size."
    )

    recipients: int = Field(ge=0)
    resolved_at: datetime


@register
class MessagesRescheduled(_MailingBatch):
    event_type: ClassVar[str] = "messages.rescheduled"
    stream_category: ClassVar[str] = "schedule"
    description: ClassVar[str] = "Messages got a new due time (mailing edited, client moved)."

    messages: list[ScheduledMessage]


@register
class MessagesWithdrawn(_MailingBatch):
    event_type: ClassVar[str] = "messages.withdrawn"
    stream_category: ClassVar[str] = "schedule"
    description: ClassVar[str] = (
        "Before the start, clients left the audience (deleted, edited out of the filter, or no "
        "longer reachable in the window): their messages no longer exist."
    )

    message_ids: list[int]


@register
class MessagesCancelled(_MailingBatch):
    event_type: ClassVar[str] = "messages.cancelled"
    stream_category: ClassVar[str] = "schedule"
    description: ClassVar[str] = "Unsent messages will not be sent (status CA)."

    message_ids: list[int]
    reason: str = Field(examples=["mailing cancelled", "end reached", "client deleted"])


class DueMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: int
    client_id: int
    phone: str
    attempt: int = Field(ge=1, description="1 for the first call to the provider")
    due_at: datetime | None = Field(
        default=None, description="Not before this instant (the opening of its send slot)"
    )
    closes_at: datetime | None = Field(
        default=None,
        description=(
            "No call may start at or after this instant: the close of the client's window "
            "occurrence, or the mailing's end (events without it: not_after)"
        ),
    )


@register
class MessagesDue(_MailingBatch):
    event_type: ClassVar[str] = "messages.due"
    stream_category: ClassVar[str] = "schedule"
    description: ClassVar[str] = "Messages handed over to the dispatcher to be sent now."

    text: str
    not_after: datetime = Field(description="The mailing's end: never send at or after it")
    messages: list[DueMessage]
    handed_over_at: datetime | None = Field(
        default=None,
        exclude_if=_is_none,
        description="When the scheduler handed them over (events without it: their record time)",
    )


@register
class MessagesRecovered(_MailingBatch):
    event_type: ClassVar[str] = "messages.recovered"
    stream_category: ClassVar[str] = "schedule"
    description: ClassVar[str] = (
        "Messages handed over long ago with no result (their due event lost) went back on the "
        "scheduler's timer, in the slot they had."
    )

    message_ids: list[int]


@register
class ClientsLeftOut(_MailingBatch):
    event_type: ClassVar[str] = "mailing.clients_left_out"
    stream_category: ClassVar[str] = "schedule"
    description: ClassVar[str] = (
        "Clients of the audience who get no message for want of a send moment before the end "
        "(left_out, with why; a later end may bring them in), and clients no longer left out "
        "(cleared: they got a message, no longer match, were deleted or opted out)."
    )

    left_out: list[int] = Field(default_factory=list)
    reason: str | None = Field(default=None, examples=["no send moment before the end"])
    cleared: list[int] = Field(default_factory=list)


_STATUS: Final = (
    "The provider call's HTTP status (absent: no answer, no call, or recorded before it was "
    "carried)"
)


class DeliveredMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: int
    attempt: int
    sent_at: datetime
    status: int | None = Field(default=None, exclude_if=_is_none, description=_STATUS)


class FailedAttempt(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: int
    attempts: int = Field(description="Provider calls made so far for this message")
    error: str
    retry_at: datetime = Field(description="Not before this time (backoff, Retry-After)")
    failed_at: datetime | None = Field(
        default=None,
        exclude_if=_is_none,
        description="When the call failed (absent: handed back without a call, or recorded "
        "before it was carried)",
    )
    status: int | None = Field(default=None, exclude_if=_is_none, description=_STATUS)


class UndeliveredMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: int
    attempts: int
    error: str
    failed_at: datetime
    status: int | None = Field(default=None, exclude_if=_is_none, description=_STATUS)


class _DispatchBatch(_MailingBatch):
    stream_category: ClassVar[str] = "dispatch"


@register
class MessagesDelivered(_DispatchBatch):
    event_type: ClassVar[str] = "messages.delivered"
    description: ClassVar[str] = "The provider accepted these messages (status DL)."

    messages: list[DeliveredMessage]


@register
class MessageAttemptsFailed(_DispatchBatch):
    event_type: ClassVar[str] = "messages.attempt_failed"
    description: ClassVar[str] = (
        "A retryable failure (timeout, connection error, 5xx, 429, provider circuit open): "
        "the scheduler sends the message again at retry_at if the mailing is still on."
    )

    messages: list[FailedAttempt]


@register
class MessagesUndelivered(_DispatchBatch):
    event_type: ClassVar[str] = "messages.undelivered"
    description: ClassVar[str] = (
        "Final failure (status ND): rejected by the provider, attempt limit or end reached."
    )

    messages: list[UndeliveredMessage]


# --- reports (appended by the reporter to stream report-<day>) ---------------------------------


@register
class DailyReportSent(Event):
    event_type: ClassVar[str] = "report.sent"
    stream_category: ClassVar[str] = "report"
    description: ClassVar[str] = (
        "The daily statistics email of a day went out (the server answered 250). Recorded so "
        "that a projection rebuilt from the events, after a restore too, never sends it again."
    )

    day: date = Field(description="The local day (in REPORT_TZ) the email reports on")
    sent_at: datetime
    attempts: int = Field(ge=1, description="Times the day had been claimed for sending")
    message_id: str = Field(description="The email's Message-ID")

    def _stream_key(self) -> str:
        return self.day.isoformat()
