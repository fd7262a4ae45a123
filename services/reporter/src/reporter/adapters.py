"""The projection's tables: set-based reads and writes, a handful of statements per batch
whatever the number of messages in it.

Id lists are joined as ``unnest($1::bigint[])`` rather than tested with ``= ANY($1)``: asyncpg
prepares every statement, and once PostgreSQL switches to the generic plan ``= ANY`` of a
parameter is no longer hashed, so a sequential scan checks every row against every id (seen:
10,000 ids against 100,000 rows, 0.6 s a batch, growing with the table). A join stays a
nested loop over the primary key, or a hash join, whatever the plan."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from reporter.domain import ClientValues, MailingDelta, MailingPatch, MessageState, Status
from sms_events.db import Connection, stage

__all__ = [
    "add_deltas",
    "apply_mailing_patches",
    "load_states",
    "lock_mailings",
    "save_states",
]


async def lock_mailings(conn: Connection, mailing_ids: Collection[int]) -> set[int]:
    """Create the missing mailing rows and lock all of them until commit; returns those that
    were deleted.

    Every writer of a mailing's messages takes this lock first, so between reading the old
    message states and adding the counter difference nobody else can change them. Locking in
    mailing_id order keeps two replicas handling overlapping batches from deadlocking.
    """
    rows = await conn.fetch(
        """
        INSERT INTO reporter_mailings AS r (mailing_id)
        SELECT id FROM unnest($1::bigint[]) AS u(id) ORDER BY id
        ON CONFLICT (mailing_id) DO UPDATE SET updated_at = r.updated_at
        RETURNING r.mailing_id, r.deleted_at IS NOT NULL AS deleted
        """,
        sorted(mailing_ids),
    )
    return {r["mailing_id"] for r in rows if r["deleted"]}


async def apply_mailing_patches(conn: Connection, patches: Sequence[MailingPatch]) -> set[int]:
    """Apply folded mailing events (rows already locked); returns the mailings deleted now,
    whose messages are removed and counters zeroed in the same transaction."""
    rows = await conn.fetch(
        """
        UPDATE reporter_mailings r SET
            datetime_start = CASE WHEN p.state_at >= r.state_updated_at
                                    OR (p.state_at IS NOT NULL AND r.state_updated_at IS NULL)
                             THEN p.datetime_start ELSE r.datetime_start END,
            datetime_end   = CASE WHEN p.state_at >= r.state_updated_at
                                    OR (p.state_at IS NOT NULL AND r.state_updated_at IS NULL)
                             THEN p.datetime_end ELSE r.datetime_end END,
            segments       = CASE WHEN p.state_at >= r.state_updated_at
                                    OR (p.state_at IS NOT NULL AND r.state_updated_at IS NULL)
                             THEN p.segments ELSE r.segments END,
            state_updated_at = GREATEST(r.state_updated_at, p.state_at),
            paused = CASE WHEN p.paused_changed_at >= r.paused_changed_at
                            OR (p.paused_changed_at IS NOT NULL AND r.paused_changed_at IS NULL)
                     THEN p.paused ELSE r.paused END,
            paused_changed_at = GREATEST(r.paused_changed_at, p.paused_changed_at),
            cancelled_at = LEAST(r.cancelled_at, p.cancelled_at),
            deleted_at = LEAST(r.deleted_at, p.deleted_at),
            resolved_at = GREATEST(r.resolved_at, p.resolved_at),
            updated_at = now()
        FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[],
                    $5::boolean[], $6::timestamptz[], $7::timestamptz[], $8::timestamptz[],
                    $9::timestamptz[], $10::integer[])
             AS p(mailing_id, datetime_start, datetime_end, state_at,
                  paused, paused_changed_at, cancelled_at, deleted_at, resolved_at, segments)
        WHERE r.mailing_id = p.mailing_id
        RETURNING r.mailing_id, p.deleted_at IS NOT NULL AS deleting
        """,
        [p.mailing_id for p in patches],
        [p.datetime_start for p in patches],
        [p.datetime_end for p in patches],
        [p.state_at for p in patches],
        [p.paused for p in patches],
        [p.paused_changed_at for p in patches],
        [p.cancelled_at for p in patches],
        [p.deleted_at for p in patches],
        [p.resolved_at for p in patches],
        [p.segments for p in patches],
    )
    deleted = sorted(r["mailing_id"] for r in rows if r["deleting"])
    if deleted:
        await conn.execute(
            """
            WITH gone(mailing_id) AS (SELECT unnest($1::bigint[])),
                 messages AS (
                     DELETE FROM reporter_messages m USING gone
                     WHERE m.mailing_id = gone.mailing_id),
                 withdrawn AS (
                     DELETE FROM reporter_withdrawn_messages w USING gone
                     WHERE w.mailing_id = gone.mailing_id)
            UPDATE reporter_mailings r SET
                clients_count = 0, created_messages = 0, scheduled_messages = 0,
                delivered_messages = 0, undelivered_messages = 0, cancelled_messages = 0,
                attempts_total = 0, first_sent_at = NULL, last_sent_at = NULL,
                completed_at = NULL, updated_at = now()
            FROM gone WHERE r.mailing_id = gone.mailing_id
            """,
            deleted,
        )
    return set(deleted)


async def load_states(conn: Connection, message_ids: Collection[int]) -> dict[int, MessageState]:
    """The stored state of each of ``message_ids`` that the projection knows (withdrawn ones
    included)."""
    rows = await conn.fetch(
        """
        WITH wanted(message_id) AS (SELECT unnest($1::bigint[]))
        SELECT m.message_id, m.mailing_id, m.client_id, m.status::text AS status,
               m.datetime_send, m.attempts, m.last_error, m.cancelled_at, m.created_at,
               m.updated_at, m.operator_code, m.tag, m.time_zone, m.first_due_at
          FROM wanted JOIN reporter_messages m USING (message_id)
        UNION ALL
        SELECT w.message_id, w.mailing_id, w.client_id, 'WD', w.datetime_send, w.attempts,
               w.last_error, NULL, coalesce(w.created_at, w.withdrawn_at), w.withdrawn_at,
               w.operator_code, w.tag, w.time_zone, w.first_due_at
          FROM wanted JOIN reporter_withdrawn_messages w USING (message_id)
        """,
        list(message_ids),
    )
    status_of = _STATUS_OF
    clients: dict[tuple[str | None, str | None, str | None], ClientValues | None] = {}
    states: dict[int, MessageState] = {}
    # Positional: tens of thousands of rows a batch, each read once.
    for (message_id, mailing_id, client_id, status, datetime_send, attempts, last_error,
         cancelled_at, created_at, updated_at, operator_code, tag, time_zone,
         first_due_at) in rows:  # fmt: skip
        key = (operator_code, tag, time_zone)
        if key not in clients:  # one value object per client values in a batch
            clients[key] = ClientValues.known(operator_code, tag, time_zone)
        states[message_id] = MessageState(
            message_id, mailing_id, client_id, status_of[status], datetime_send, attempts,
            last_error, cancelled_at, created_at, updated_at, clients[key], first_due_at,
        )  # fmt: skip
    return states


_STATUS_OF: Mapping[str, Status] = {s.value: s for s in Status}


async def save_states(
    conn: Connection, changes: Iterable[tuple[MessageState | None, MessageState]]
) -> None:
    """Write changed message states: new rows, updated rows, and moves between the message
    table and the withdrawn tombstones."""
    inserts: list[MessageState] = []
    moving: list[tuple[MessageState, MessageState]] = []  # stored rows that change
    tombstones: list[MessageState] = []  # new or changed withdrawn messages
    removed: list[int] = []  # visible rows that were withdrawn
    revived: list[int] = []  # tombstones that a final status brought back
    for old, new in changes:
        was_row = old is not None and old.visible
        if new.visible:
            if was_row:
                assert old is not None
                moving.append((old, new))
            else:
                inserts.append(new)
            if old is not None and not old.visible:
                revived.append(new.message_id)
        else:
            tombstones.append(new)
            if was_row:
                removed.append(new.message_id)
    if removed:
        await conn.execute(
            "DELETE FROM reporter_messages m USING unnest($1::bigint[]) AS u(id)"
            " WHERE m.message_id = u.id",
            removed,
        )
    if revived:
        await conn.execute(
            "DELETE FROM reporter_withdrawn_messages w USING unnest($1::bigint[]) AS u(id)"
            " WHERE w.message_id = u.id",
            revived,
        )
    if tombstones:
        await conn.execute(
            """
            INSERT INTO reporter_withdrawn_messages AS w
                (message_id, mailing_id, client_id, datetime_send, attempts, last_error,
                 created_at, withdrawn_at, operator_code, tag, time_zone, first_due_at)
            SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::timestamptz[],
                                 $5::integer[], $6::text[], $7::timestamptz[], $8::timestamptz[],
                                 $9::text[], $10::text[], $11::text[], $12::timestamptz[])
            ON CONFLICT (message_id) DO UPDATE SET
                client_id = EXCLUDED.client_id, datetime_send = EXCLUDED.datetime_send,
                attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error,
                created_at = EXCLUDED.created_at, withdrawn_at = EXCLUDED.withdrawn_at,
                operator_code = EXCLUDED.operator_code, tag = EXCLUDED.tag,
                time_zone = EXCLUDED.time_zone, first_due_at = EXCLUDED.first_due_at
            """,
            [s.message_id for s in tombstones],
            [s.mailing_id for s in tombstones],
            [s.client_id for s in tombstones],
            [s.datetime_send for s in tombstones],
            [s.attempts for s in tombstones],
            [s.last_error for s in tombstones],
            [s.created_at for s in tombstones],
            [s.updated_at for s in tombstones],
            *_client_columns(tombstones),
        )
    if inserts:
        # No ON CONFLICT: under the mailing lock a row we did not load cannot exist, and if it
        # did the counters would be off; failing the batch is the honest outcome.
        await conn.copy_records_to_table(
            "reporter_messages", records=_rows(inserts), columns=_MESSAGE_COLUMNS
        )
    if moving:
        # Most updates move only the delivery columns (a message scheduled, then delivered):
        # those go with them alone, half the bytes to encode; the rest with every column.
        lean: list[MessageState] = []
        full: list[MessageState] = []
        for old, new in moving:
            (lean if _same_origin(old, new) else full).append(new)
        if lean:
            await _stage(conn, _STAGE_LEAN, _LEAN_COLUMNS, _lean_rows(lean))
            await conn.execute(
                f"""
                UPDATE reporter_messages m SET
                    status = u.status, datetime_send = u.datetime_send, attempts = u.attempts,
                    last_error = u.last_error, cancelled_at = u.cancelled_at,
                    updated_at = u.updated_at
                FROM {_STAGE_LEAN} u
                WHERE m.message_id = u.message_id
                """
            )
        if full:
            await _stage(conn, _STAGE, _MESSAGE_COLUMNS, _rows(full))
            await conn.execute(
                f"""
                UPDATE reporter_messages m SET
                    client_id = u.client_id, status = u.status, datetime_send = u.datetime_send,
                    attempts = u.attempts, last_error = u.last_error,
                    cancelled_at = u.cancelled_at, created_at = u.created_at,
                    updated_at = u.updated_at, operator_code = u.operator_code, tag = u.tag,
                    time_zone = u.time_zone, first_due_at = u.first_due_at
                FROM {_STAGE} u
                WHERE m.message_id = u.message_id
                """
            )


def _same_origin(old: MessageState, new: MessageState) -> bool:
    """Whether only the delivery columns (``_LEAN_COLUMNS``) of a stored row change."""
    return (
        old.client_id == new.client_id
        and old.created_at == new.created_at
        and old.client == new.client
        and old.first_due_at == new.first_due_at
    )


# Message rows go to the database by COPY: a batch's tens of thousands of rows are written in
# half the time the same rows take as unnest() arrays (encoding them is most of it).
_MESSAGE_COLUMNS = (
    "message_id", "mailing_id", "client_id", "status", "datetime_send", "attempts",
    "last_error", "cancelled_at", "created_at", "updated_at", "operator_code", "tag",
    "time_zone", "first_due_at",
)  # fmt: skip
_LEAN_COLUMNS = (
    "message_id", "status", "datetime_send", "attempts", "last_error", "cancelled_at",
    "updated_at",
)  # fmt: skip
# Changed rows are copied into these (``sms_events.db.stage``), then applied by one UPDATE.
_STAGE = "reporter_message_stage"
_STAGE_LEAN = "reporter_message_stage_lean"


async def _stage(
    conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[object, ...]]
) -> None:
    await stage(conn, table, [(c, _MESSAGE_TYPES[c]) for c in columns], rows)


_MESSAGE_TYPES: Mapping[str, str] = {
    "message_id": "bigint", "mailing_id": "bigint", "client_id": "bigint", "status": "text",
    "datetime_send": "timestamptz", "attempts": "integer", "last_error": "text",
    "cancelled_at": "timestamptz", "created_at": "timestamptz", "updated_at": "timestamptz",
    "operator_code": "text", "tag": "text", "time_zone": "text", "first_due_at": "timestamptz",
}  # fmt: skip


def _lean_rows(states: Sequence[MessageState]) -> list[tuple[object, ...]]:
    """The states as rows of ``_LEAN_COLUMNS``."""
    return [
        (s.message_id, s.status.value, s.datetime_send, s.attempts, s.last_error,
         s.cancelled_at, s.updated_at)
        for s in states
    ]  # fmt: skip


def _rows(states: Sequence[MessageState]) -> list[tuple[object, ...]]:
    """The states as rows of ``_MESSAGE_COLUMNS``."""
    return [
        (
            s.message_id, s.mailing_id, s.client_id, s.status.value, s.datetime_send,
            s.attempts, s.last_error, s.cancelled_at, s.created_at, s.updated_at,
            *((c.operator_code, c.tag, c.time_zone) if (c := s.client) else (None, None, None)),
            s.first_due_at,
        )
        for s in states
    ]  # fmt: skip


def _client_columns(states: Sequence[MessageState]) -> tuple[list[object], ...]:
    """operator_code, tag, time_zone, first_due_at."""
    return (
        [s.client.operator_code if s.client else None for s in states],
        [s.client.tag if s.client else None for s in states],
        [s.client.time_zone if s.client else None for s in states],
        [s.first_due_at for s in states],
    )


async def add_deltas(conn: Connection, deltas: Mapping[int, MailingDelta]) -> None:
    """Move each mailing's counters by what its message rows changed by in this batch."""
    if not deltas:
        return
    ids = sorted(deltas)
    d = [deltas[i] for i in ids]
    await conn.execute(
        """
        UPDATE reporter_mailings r SET
            clients_count        = r.clients_count + d.created,
            created_messages     = r.created_messages + d.created,
            scheduled_messages   = r.scheduled_messages + d.scheduled,
            delivered_messages   = r.delivered_messages + d.delivered,
            undelivered_messages = r.undelivered_messages + d.undelivered,
            cancelled_messages   = r.cancelled_messages + d.cancelled,
            attempts_total       = r.attempts_total + d.attempts,
            first_sent_at        = LEAST(r.first_sent_at, d.first_sent_at),
            last_sent_at         = GREATEST(r.last_sent_at, d.last_sent_at),
            completed_at = CASE
                WHEN r.scheduled_messages + d.scheduled = 0 AND r.created_messages + d.created > 0
                THEN coalesce(r.completed_at, d.last_event_at, now())
            END,
            updated_at = now()
        FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
                    $6::bigint[], $7::bigint[], $8::timestamptz[], $9::timestamptz[],
                    $10::timestamptz[])
             AS d(mailing_id, created, scheduled, delivered, undelivered, cancelled, attempts,
                  first_sent_at, last_sent_at, last_event_at)
        WHERE r.mailing_id = d.mailing_id
        """,
        ids,
        [x.created for x in d],
        [x.scheduled for x in d],
        [x.delivered for x in d],
        [x.undelivered for x in d],
        [x.cancelled for x in d],
        [x.attempts for x in d],
        [x.first_sent_at for x in d],
        [x.last_sent_at for x in d],
        [x.last_event_at for x in d],
    )
