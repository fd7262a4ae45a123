"""The gateway's read models as ``sms-replay api-gateway`` rebuilds them: clients, mailings and
the suppression list folded from their events. Commands write these rows in the transaction of
their events; the fold writes what those events say, so a rebuilt row equals the one the
command wrote (ids and versions from the events, times from their payloads, never the clock)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sms_events.contracts import (
    ClientCreated,
    ClientDeleted,
    ClientsImported,
    ClientUpdated,
    Event,
    MailingCancelled,
    MailingDeleted,
    MailingPaused,
    MailingResumed,
    MailingScheduled,
    MailingUpdated,
    OptOutRecorded,
    OptOutRemoved,
    OptOutsImported,
)
from sms_events.db import Connection
from sms_events.envelope import Envelope
from sms_events.replay import Projection

__all__ = ["PROJECTION", "READ_MODELS", "fold"]

READ_MODELS: Final = "api-gateway"
"""The projection's name: commands announce with it that they write these tables."""

_TYPES = frozenset(
    e.event_type
    for e in (
        ClientCreated,
        ClientUpdated,
        ClientDeleted,
        ClientsImported,
        MailingScheduled,
        MailingUpdated,
        MailingDeleted,
        MailingCancelled,
        MailingPaused,
        MailingResumed,
        OptOutRecorded,
        OptOutRemoved,
        OptOutsImported,
    )
)

# An imported item or a client event at a version: written only over an older version.
_UPSERT_CLIENTS = """
INSERT INTO gateway_clients AS g (id, phone, tag, time_zone, version, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[],
                     $6::timestamptz[], $6::timestamptz[])
ON CONFLICT (id) DO UPDATE
   SET phone = excluded.phone, tag = excluded.tag, time_zone = excluded.time_zone,
       version = excluded.version, updated_at = excluded.updated_at
 WHERE g.version < excluded.version
"""

# An opt-out at a version, written only over an older one (as the commands wrote it).
_UPSERT_OPT_OUTS = """
INSERT INTO gateway_opt_outs AS o
    (phone, opted_out, reason, source, opted_out_at, version, updated_at)
SELECT u.phone, true, u.reason, $3, $4, u.version, $4
FROM unnest($1::text[], $2::text[], $5::int[]) AS u(phone, reason, version)
ON CONFLICT (phone) DO UPDATE
   SET opted_out = true, reason = excluded.reason, source = excluded.source,
       opted_out_at = excluded.opted_out_at, version = excluded.version,
       updated_at = excluded.updated_at
 WHERE o.version < excluded.version
"""

_MAILING_FIELDS = (
    "text, datetime_start, datetime_end, send_interval_time_start, send_interval_time_end,"
    " client_filter"
)


async def fold(conn: Connection, envelopes: Sequence[Envelope]) -> None:
    """Fold client, mailing and opt-out events, in order, into the gateway's tables."""
    top = {"gateway_clients": 0, "gateway_mailings": 0}
    for env in envelopes:
        if env.type not in _TYPES:
            continue
        event = env.payload()
        await _fold_one(conn, event, env.sequence or 1, top)
    for table, highest in top.items():
        if highest:  # ids are allocated once and never reused, deleted ones' included
            await conn.execute(_AT_LEAST, table, highest)


# Moves the table's id sequence (its own, on the search path) on to at least $2.
_AT_LEAST = """
SELECT setval(s, greatest($2, coalesce(pg_sequence_last_value(s), 0)))
FROM (SELECT pg_get_serial_sequence($1, 'id')::regclass AS s) q
"""


async def _fold_one(conn: Connection, event: Event, version: int, top: dict[str, int]) -> None:
    match event:
        case ClientCreated() | ClientUpdated():
            await conn.execute(
                _UPSERT_CLIENTS,
                [event.client_id],
                [event.phone],
                [event.tag],
                [event.time_zone],
                [version],
                [event.updated_at],
            )
            top["gateway_clients"] = max(top["gateway_clients"], event.client_id)
        case ClientsImported():
            await _fold_import(conn, event)
            top["gateway_clients"] = max(
                [top["gateway_clients"], *(c.client_id for c in event.clients)]
            )
        case ClientDeleted():
            await conn.execute("DELETE FROM gateway_clients WHERE id = $1", event.client_id)
        case OptOutRecorded():
            await conn.execute(
                _UPSERT_OPT_OUTS,
                [event.phone],
                [event.reason],
                event.source,
                event.opted_out_at,
                [version],
            )
        case OptOutsImported():
            items = event.opt_outs
            await conn.execute(
                _UPSERT_OPT_OUTS,
                [o.phone for o in items],
                [o.reason for o in items],
                "import",
                event.opted_out_at,
                [o.version for o in items],
            )
        case OptOutRemoved():
            await conn.execute(
                "UPDATE gateway_opt_outs SET opted_out = false, version = $2, updated_at = $3"
                " WHERE phone = $1 AND version < $2",
                event.phone,
                version,
                event.removed_at,
            )
        case MailingScheduled():
            await conn.execute(
                f"""
                INSERT INTO gateway_mailings (id, {_MAILING_FIELDS}, version, created_at,
                                              updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
                """,
                event.mailing_id,
                *_fields(event),
                version,
                event.updated_at,
            )
            top["gateway_mailings"] = max(top["gateway_mailings"], event.mailing_id)
        case MailingUpdated():
            await _update_mailing(
                conn,
                event.mailing_id,
                version,
                "text = $4, datetime_start = $5, datetime_end = $6,"
                " send_interval_time_start = $7, send_interval_time_end = $8,"
                " client_filter = $9",
                event.updated_at,
                *_fields(event),
            )
        case MailingPaused():
            await _update_mailing(conn, event.mailing_id, version, "paused = true", event.paused_at)
        case MailingResumed():
            await _update_mailing(
                conn, event.mailing_id, version, "paused = false", event.resumed_at
            )
        case MailingCancelled():
            await _update_mailing(
                conn, event.mailing_id, version, "cancelled_at = $3", event.cancelled_at
            )
        case MailingDeleted():
            await conn.execute("DELETE FROM gateway_mailings WHERE id = $1", event.mailing_id)


def _fields(event: MailingScheduled | MailingUpdated) -> tuple[Any, ...]:
    return (
        event.text,
        event.datetime_start,
        event.datetime_end,
        event.send_interval_time_start,
        event.send_interval_time_end,
        event.client_filter,
    )


async def _update_mailing(
    conn: Connection, mailing_id: int, version: int, assignments: str, at: Any, *args: Any
) -> None:
    await conn.execute(
        f"UPDATE gateway_mailings SET {assignments}, version = $2, updated_at = $3"
        " WHERE id = $1 AND version < $2",
        mailing_id,
        version,
        at,
        *args,
    )


async def _fold_import(conn: Connection, event: ClientsImported) -> None:
    items = event.clients
    await conn.execute(
        _UPSERT_CLIENTS,
        [c.client_id for c in items],
        [c.phone for c in items],
        [c.tag for c in items],
        [c.time_zone for c in items],
        [c.version for c in items],
        [event.imported_at] * len(items),
    )


PROJECTION = Projection(
    name=READ_MODELS,
    tables=("gateway_clients", "gateway_mailings", "gateway_opt_outs"),
    fold=fold,
    types=_TYPES,
)
