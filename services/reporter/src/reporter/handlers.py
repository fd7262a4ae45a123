"""What a batch of events does to the statistics. Called inside the consumer's transaction
(which also records the event ids, so a redelivered event changes nothing).

Lock order, the same in every batch: client rows, mailing rows (in id order), message rows and
the per-mailing aggregates under them, then the global rows (stats_adapters.add_global).

One INFO line per batch; with DEBUG on, one line per message whose state changed
(``message_projected``: message_id, mailing_id, attempt, status and the previous status)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import structlog

from reporter import adapters, report_adapters, stats_adapters
from reporter.domain import ClientValues, Fact, Kind, MailingPatch
from reporter.metrics import EVENTS_IGNORED, MESSAGES_PROJECTED
from reporter.stats import GlobalDelta, tally_batch
from sms_events.contracts import (
    ClientCreated,
    ClientDeleted,
    ClientsImported,
    DailyReportSent,
    Event,
    MailingAudienceResolved,
    MailingCancelled,
    MailingDeleted,
    MailingPaused,
    MailingResumed,
    MailingScheduled,
    MailingUpdated,
    MessageAttemptsFailed,
    MessagesCancelled,
    MessagesDelivered,
    MessagesRescheduled,
    MessagesScheduled,
    MessagesUndelivered,
    MessagesWithdrawn,
)
from sms_events.db import Connection
from sms_events.envelope import Envelope
from sms_events.segments import measure

__all__ = ["PROJECTED_TYPES", "handle_batch"]

log = structlog.get_logger(__name__)

_LOGGED_MAILINGS = 10  # ids named in a batch's log line (the count is always there)

PROJECTED_TYPES = frozenset(
    {
        ClientCreated.event_type,
        ClientDeleted.event_type,
        ClientsImported.event_type,
        MailingScheduled.event_type,
        MailingUpdated.event_type,
        MailingDeleted.event_type,
        MailingCancelled.event_type,
        MailingPaused.event_type,
        MailingResumed.event_type,
        MailingAudienceResolved.event_type,
        MessagesScheduled.event_type,
        MessagesRescheduled.event_type,
        MessagesWithdrawn.event_type,
        MessagesCancelled.event_type,
        MessagesDelivered.event_type,
        MessageAttemptsFailed.event_type,
        MessagesUndelivered.event_type,
        DailyReportSent.event_type,
    }
)


async def handle_batch(conn: Connection, envelopes: Sequence[Envelope]) -> None:
    """Project a batch: lock its mailings, apply mailing events, then every message fact in
    order with one read and a few set-based writes for the whole batch."""
    started = time.perf_counter()
    facts: list[Fact] = []
    patches: dict[int, MailingPatch] = {}
    clients = _Clients()
    reports: list[DailyReportSent] = []
    ignored = 0
    for env in envelopes:
        if env.type not in PROJECTED_TYPES:
            ignored += 1  # messages.due and whatever a newer producer adds
            continue
        event = env.payload()
        if isinstance(event, DailyReportSent):
            reports.append(event)
            continue
        _collect(event, env.time, facts, patches, clients)
    if ignored:
        EVENTS_IGNORED.inc(ignored)
    await report_adapters.record_sent(conn, reports)
    mailing_ids = {f.mailing_id for f in facts} | patches.keys()
    if not mailing_ids and not clients.created and not clients.deleted:
        return
    glob = GlobalDelta()
    if clients.created or clients.deleted:
        glob.totals["clients"] += await stats_adapters.track_clients(
            conn, clients.created, clients.deleted
        )
    changed = 0
    if mailing_ids:
        facts, changed = await _project(conn, mailing_ids, facts, patches, glob)
    await stats_adapters.add_global(conn, glob)
    log.info(
        "batch_projected",
        events=len(envelopes),
        ignored=ignored,
        facts=len(facts),
        changed=changed,
        mailings=len(mailing_ids),
        mailing_ids=sorted(mailing_ids)[:_LOGGED_MAILINGS],
        clients=len(clients.created) + len(clients.deleted),
        ms=round((time.perf_counter() - started) * 1000, 1),
    )


async def _project(
    conn: Connection,
    mailing_ids: set[int],
    facts: list[Fact],
    patches: dict[int, MailingPatch],
    glob: GlobalDelta,
) -> tuple[list[Fact], int]:
    """The mailing and message part of a batch; returns the facts kept and the number of
    messages changed."""
    deleted = await adapters.lock_mailings(conn, mailing_ids)
    if patches:
        deleting = {p.mailing_id for p in patches.values() if p.deleted_at is not None}
        deleting -= deleted
        if deleting:  # before the counters are zeroed: the totals lose what they held
            gone = await stats_adapters.forget_mailings(conn, deleting)
            glob.totals.update(gone.totals)
            glob.add_quarters(gone.quarters)
        deleted |= await adapters.apply_mailing_patches(conn, list(patches.values()))
    if deleted:
        facts = [f for f in facts if f.mailing_id not in deleted]
    if not facts:
        return facts, 0
    current = await adapters.load_states(conn, {f.message_id for f in facts})
    outcome, tally = tally_batch(current, facts)
    await adapters.save_states(conn, outcome.changes)
    await adapters.add_deltas(conn, outcome.mailings)
    await stats_adapters.add_mailing_stats(conn, tally)
    glob.add_counters(outcome.mailings.values())
    glob.add_quarters(tally.global_quarters())
    reached = Counter(
        new.status for old, new in outcome.changes if old is None or old.status is not new.status
    )
    for status, n in reached.items():
        MESSAGES_PROJECTED.labels(status.value).inc(n)
    if log.is_enabled_for(logging.DEBUG):
        for old, new in outcome.changes:
            log.debug(
                "message_projected",
                message_id=new.message_id,
                mailing_id=new.mailing_id,
                attempt=new.attempts,
                status=new.status.value,
                previous=old.status.value if old is not None else None,
            )
    return facts, len(outcome.changes)


class _Clients:
    """Client ids created and deleted in a batch (their order does not matter: see
    stats_adapters.track_clients)."""

    def __init__(self) -> None:
        self.created: set[int] = set()
        self.deleted: dict[int, datetime] = {}


def _collect(
    event: Event,
    at: datetime,
    facts: list[Fact],
    patches: dict[int, MailingPatch],
    clients: _Clients,
) -> None:
    """Turn one event into message facts (in order), fold it into its mailing's patch, or
    note a client."""
    match event:
        case ClientCreated():
            clients.created.add(event.client_id)
        case ClientsImported():
            # Only the count matters here: an imported update is no new client.
            clients.created.update(c.client_id for c in event.clients if c.created)
        case ClientDeleted():
            clients.deleted.setdefault(event.client_id, event.deleted_at)
        case MessagesScheduled():
            # The client as the message was scheduled (one value object per distinct values).
            seen: dict[tuple[str | None, str | None, str | None], ClientValues | None] = {}
            for m in event.messages:
                key = (m.operator_code, m.tag, m.time_zone)
                if key not in seen:
                    seen[key] = ClientValues.known(*key)
                facts.append(
                    Fact(Kind.SCHEDULED, m.message_id, event.mailing_id, at, m.client_id,
                         m.due_at, client=seen[key])
                )  # fmt: skip
        case MessagesRescheduled():
            # A reschedule's client values never win: the first scheduling's stay.
            facts.extend(
                Fact(Kind.RESCHEDULED, m.message_id, event.mailing_id, at, m.client_id, m.due_at)
                for m in event.messages
            )
        case MessagesWithdrawn():
            facts.extend(
                Fact(Kind.WITHDRAWN, mid, event.mailing_id, at) for mid in event.message_ids
            )
        case MessagesCancelled():
            # The reason ("opted_out", "mailing cancelled", ...) becomes the last error of a
            # message never tried; a tried one keeps the provider's last answer.
            facts.extend(
                Fact(Kind.CANCELLED, mid, event.mailing_id, at, error=event.reason)
                for mid in event.message_ids
            )
        case MessagesDelivered():
            facts.extend(
                Fact(
                    Kind.DELIVERED,
                    m.message_id,
                    event.mailing_id,
                    at,
                    at=m.sent_at,
                    attempts=m.attempt,
                )
                for m in event.messages
            )
        case MessageAttemptsFailed():
            facts.extend(
                Fact(
                    Kind.ATTEMPT_FAILED,
                    m.message_id,
                    event.mailing_id,
                    at,
                    at=m.retry_at,
                    attempts=m.attempts,
                    error=m.error,
                )
                for m in event.messages
            )
        case MessagesUndelivered():
            facts.extend(
                Fact(
                    Kind.UNDELIVERED,
                    m.message_id,
                    event.mailing_id,
                    at,
                    at=m.failed_at,
                    attempts=m.attempts,
                    error=m.error,
                )
                for m in event.messages
            )
        case MailingScheduled() | MailingUpdated():
            _patch(patches, event.mailing_id).state(
                event.datetime_start,
                event.datetime_end,
                event.updated_at,
                measure(event.text).segments,
            )
        case MailingPaused():
            _patch(patches, event.mailing_id).pause(True, event.paused_at)
        case MailingResumed():
            _patch(patches, event.mailing_id).pause(False, event.resumed_at)
        case MailingCancelled():
            _patch(patches, event.mailing_id).cancel(event.cancelled_at)
        case MailingDeleted():
            _patch(patches, event.mailing_id).delete(event.deleted_at)
        case MailingAudienceResolved():
            _patch(patches, event.mailing_id).resolved(event.resolved_at)


def _patch(patches: dict[int, MailingPatch], mailing_id: int) -> MailingPatch:
    patch = patches.get(mailing_id)
    if patch is None:
        patch = patches[mailing_id] = MailingPatch(mailing_id)
    return patch
