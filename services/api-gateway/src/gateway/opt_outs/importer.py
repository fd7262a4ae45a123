"""Bulk import of opt-outs from CSV (``phone,reason``, header optional) or NDJSON.

Lines are read as the body streams in (``gateway.clients.importer.parsed_lines``, the clients'
reader), judged by ``schemas.parse_opt_out`` and written ``BATCH_SIZE`` phones per transaction:
one upsert for the batch, and the phones it put on the list appended as ``opt_outs.imported``
events of up to ``EVENT_SIZE`` each, every item at the version the list returned. Phones already
on the list are unchanged; importing the same file again changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Final

import asyncpg
import structlog

from gateway.clients.importer import (
    EVENT_SIZE,
    MAX_LINE_BYTES,
    CsvRows,
    ImportFormat,
    ImportResult,
    parsed_lines,
)
from gateway.errors import InvalidInput
from gateway.metrics import OPT_OUTS
from gateway.opt_outs import repository
from gateway.opt_outs.schemas import parse_opt_out
from gateway.transactions import with_retries
from sms_events.batches import chunks, new_batch_id
from sms_events.contracts import ImportedOptOut, OptOutsImported
from sms_events.db import Connection
from sms_events.store import append_new_streams

__all__ = ["BATCH_SIZE", "import_opt_outs"]

log = structlog.get_logger(__name__)

BATCH_SIZE: Final = 5000
SOURCE: Final = "import"


def imported_events(rows: list[repository.OptOutRow]) -> list[OptOutsImported]:
    if not rows:
        return []
    items = [ImportedOptOut(phone=r.phone, version=r.version, reason=r.reason) for r in rows]
    # Every row of one batch was written at now(), the start of its transaction.
    return [
        OptOutsImported(batch_id=new_batch_id(), opted_out_at=rows[0].opted_out_at,
                        opt_outs=list(chunk))
        for chunk in chunks(items, EVENT_SIZE)
    ]  # fmt: skip


async def _commit(pool: asyncpg.Pool, batch: dict[str, str | None], result: ImportResult) -> None:
    async def attempt(conn: Connection) -> int:
        rows = await repository.record_many(conn, list(batch.items()), SOURCE)
        await append_new_streams(conn, imported_events(rows))
        return len(rows)

    recorded = await with_retries(pool, attempt, subject="opt-out import")
    result.created += recorded
    result.unchanged += len(batch) - recorded
    OPT_OUTS.labels(SOURCE).inc(recorded)


async def import_opt_outs(
    pool: asyncpg.Pool,
    body: AsyncIterable[bytes],
    fmt: ImportFormat,
    *,
    batch_size: int = BATCH_SIZE,
    max_line: int = MAX_LINE_BYTES,
    max_rows: int | None = None,
) -> ImportResult:
    """Put every valid line's phone on the list; ``created`` counts the phones added,
    ``unchanged`` those already on it (a phone twice in one file counts once)."""
    result = ImportResult()
    batch: dict[str, str | None] = {}
    csv_rows = CsvRows(fields=("phone", "reason"), blank_is_absent=frozenset({"reason"}))
    lines = parsed_lines(body, fmt, csv_rows, result, max_line=max_line, max_rows=max_rows)
    try:
        async for lineno, data in lines:
            try:
                wanted = parse_opt_out(data)
            except InvalidInput as exc:
                result.reject(lineno, exc.errors)
                continue
            if wanted.phone in batch:
                result.unchanged += 1
                continue
            batch[wanted.phone] = wanted.reason
            if len(batch) >= batch_size:
                await _commit(pool, batch, result)
                batch = {}
        if batch:
            await _commit(pool, batch, result)
    finally:
        await lines.aclose()
    log.info(
        "opt_outs_imported",
        format=fmt.name.lower(),
        recorded=result.created,
        unchanged=result.unchanged,
        rejected=result.rejected,
    )
    return result
