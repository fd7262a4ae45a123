"""Streamed bulk import of clients from CSV or NDJSON.

The body is read chunk by chunk and split into lines as it arrives; only the current batch of
rows is ever held in memory. Each row is judged by the same rules as ``POST /api/v1/clients/``.
Valid rows are written in batches, one transaction per batch: the read model is upserted from a
temporary table filled with COPY, and the clients it created or changed are appended as
``clients.imported`` events of up to ``EVENT_SIZE`` clients each (each event a stream of its
own), every item at the version the read model returned. Not one event per client: projections
apply a few hundred events set-based where they had 100,000 to apply one by one, so a mailing
created right after an import reaches the whole base without waiting for them. A phone seen
twice in one batch first flushes the batch, so the result is the same as importing the rows
one by one. Batches already committed stay committed if a later one fails; importing the same
file again changes nothing.
"""

from __future__ import annotations

import asyncio
import csv
import enum
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import orjson
import structlog

from gateway.clients.repository import ClientRow, import_batch, written_after_us
from gateway.clients.schemas import parse_change
from gateway.errors import NON_FIELD_ERRORS, ConcurrentModification, Errors, InvalidInput
from gateway.fields import Unset
from gateway.import_limits import ImportTooLarge
from gateway.metrics import IMPORT_ROWS
from gateway.transactions import with_retries
from sms_events.batches import chunks, new_batch_id
from sms_events.contracts import ClientsImported, ImportedClient
from sms_events.db import Connection
from sms_events.retrying import RetryPolicy
from sms_events.store import WrongExpectedVersion, append_new_streams

__all__ = [
    "BATCH_SIZE",
    "EVENT_SIZE",
    "MAX_ERRORS",
    "MAX_LINE_BYTES",
    "CsvRows",
    "ImportConflict",
    "ImportFormat",
    "ImportResult",
    "LineSplitter",
    "UnsupportedMediaType",
    "import_clients",
    "import_format",
    "parse_ndjson_line",
    "parsed_lines",
]

log = structlog.get_logger(__name__)

BATCH_SIZE: Final = 5000
EVENT_SIZE: Final = 500
"""Clients per ``clients.imported`` event, as many as the hot path's message batches carry."""
MAX_ERRORS: Final = 1000
MAX_LINE_BYTES: Final = 64 * 1024
BATCH_CONFLICTS: Final = RetryPolicy(attempts=8, base_s=0.01, cap_s=1.0)
"""Imports racing on the same clients retry more than a single command does."""

_BOM: Final = b"\xef\xbb\xbf"
_FIELDS: Final = ("phone", "tag", "time_zone")


Row = tuple[int, str, str | None, bool, str | None]
"""(line, phone, tag, tag given, time zone or None): one valid row, as copied to PostgreSQL."""


class ImportFormat(enum.Enum):
    CSV = "text/csv"
    NDJSON = "application/x-ndjson"


class UnsupportedMediaType(ValueError):
    """The request's Content-Type is not one the importer reads."""


class ImportConflict(RuntimeError):
    """A batch kept conflicting with concurrent writers; earlier batches are committed."""

    def __init__(self, result: ImportResult) -> None:
        super().__init__("import batch conflicted with concurrent changes")
        self.result = result


_MEDIA_TYPES: Final = {
    "text/csv": ImportFormat.CSV,
    "application/csv": ImportFormat.CSV,
    "application/x-ndjson": ImportFormat.NDJSON,
    "application/ndjson": ImportFormat.NDJSON,
    "application/jsonl": ImportFormat.NDJSON,
    "application/x-jsonlines": ImportFormat.NDJSON,
}


def import_format(content_type: str | None) -> ImportFormat:
    """The format named by a Content-Type header; raises ``UnsupportedMediaType``."""
    media, *params = (content_type or "").split(";")
    fmt = _MEDIA_TYPES.get(media.strip().lower())
    if fmt is None:
        shown = media.strip() or "(none)"
        raise UnsupportedMediaType(
            f'Unsupported media type "{shown}". Send text/csv (columns phone,tag,time_zone, '
            "header row optional) or application/x-ndjson (one JSON object per line)."
        )
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in {
            "utf-8",
            "utf8",
            "us-ascii",
        }:
            raise UnsupportedMediaType("Only UTF-8 is supported; re-encode the file as UTF-8.")
    return fmt


class LineSplitter:
    """Split a byte stream into numbered lines as chunks arrive (``\\n`` or ``\\r\\n``).

    A line longer than ``max_line`` bytes is not buffered: it is skipped and reported as
    ``None``, so a body without newlines cannot exhaust memory.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._max = max_line
        self._rest = b""
        self._overlong = False
        self._lineno = 0

    def feed(self, chunk: bytes) -> list[tuple[int, bytes | None]]:
        if not chunk:
            return []
        parts = (self._rest + chunk).split(b"\n")
        self._rest = parts.pop()
        lines = [self._line(part) for part in parts]
        if len(self._rest) > self._max:
            self._overlong, self._rest = True, b""
        return lines

    def close(self) -> list[tuple[int, bytes | None]]:
        """The last line, when the body does not end with a newline."""
        if not self._rest and not self._overlong:
            return []
        line = self._line(self._rest)
        self._rest = b""
        return [line]

    def _line(self, part: bytes) -> tuple[int, bytes | None]:
        self._lineno += 1
        if self._overlong or len(part) > self._max:
            self._overlong = False
            return self._lineno, None
        return self._lineno, part[:-1] if part.endswith(b"\r") else part


def _invalid(message: str) -> InvalidInput:
    return InvalidInput({NON_FIELD_ERRORS: [message]})


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("Line is not valid UTF-8.") from None


class CsvRows:
    """Turns CSV lines into field dicts. The first non-blank line is a header when one of its
    cells is ``phone``; otherwise the columns are ``fields`` by position (for clients
    ``phone,tag,time_zone``).

    A blank cell of a column in ``blank_is_absent`` counts as a column the file does not have:
    a blank ``time_zone`` keeps the client's time zone (``UTC`` for a new client), while a blank
    ``tag`` clears the tag.
    """

    def __init__(
        self,
        fields: tuple[str, ...] = _FIELDS,
        blank_is_absent: frozenset[str] = frozenset({"time_zone"}),
    ) -> None:
        self._fields = fields
        self._blank_is_absent = blank_is_absent
        self._columns: dict[str, int] | None = None

    def parse(self, line: bytes) -> dict[str, Any] | None:
        """Fields of one data line, ``None`` for a blank or header line."""
        text = _decode(line)
        if not text.strip():
            return None
        cells = self._split(text)
        if self._columns is None:
            names = [c.strip().lower() for c in cells]
            if "phone" in names:
                self._columns = {n: names.index(n) for n in self._fields if n in names}
                return None
            self._columns = {name: i for i, name in enumerate(self._fields)}
        data: dict[str, Any] = {}
        for name, index in self._columns.items():
            if index < len(cells) and (name not in self._blank_is_absent or cells[index].strip()):
                data[name] = cells[index]
        return data

    @staticmethod
    def _split(text: str) -> list[str]:
        if '"' not in text:
            return text.split(",")
        try:
            return next(csv.reader((text,), strict=True))
        except csv.Error:
            raise _invalid("Malformed CSV line (check the quotes).") from None


def parse_ndjson_line(line: bytes) -> Any | None:
    """The JSON value on one NDJSON line, ``None`` for a blank line."""
    if not line.strip():
        return None
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise _invalid(f"JSON parse error - {exc}") from None


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    max_errors: int = MAX_ERRORS
    lines_read: int = 0
    """Lines taken so far (blank and header lines too): a job's progress, not in ``to_json``."""

    def reject(self, line: int, errors: Errors) -> None:
        self.rejected += 1
        if len(self.errors) < self.max_errors:
            self.errors.append({"line": line, "errors": errors})

    def to_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "errors": self.errors,
        }


class _Batches:
    """Collects valid rows and commits them a batch at a time.

    While one batch commits (PostgreSQL working on the other core), the next one is parsed:
    at most one commit is in flight and each starts after the previous one committed, so the
    result is still that of importing the rows in file order.
    """

    def __init__(self, pool: asyncpg.Pool, result: ImportResult, size: int) -> None:
        self._pool = pool
        self._result = result
        self._inflight: asyncio.Task[None] | None = None
        self.size = size
        self.rows: list[Row] = []
        self.phones: set[str] = set()

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self.phones.add(row[1])

    async def flush(self) -> None:
        """Start committing the rows collected so far (after the previous batch committed)."""
        if not self.rows:
            return
        await self.wait()
        rows, self.rows, self.phones = self.rows, [], set()
        self._inflight = asyncio.create_task(self._commit(rows))

    async def wait(self) -> None:
        """Wait for the batch in flight; raises what its commit raised."""
        if self._inflight is not None:
            task, self._inflight = self._inflight, None
            await task

    async def _commit(self, rows: list[Row]) -> None:
        async def attempt(conn: Connection) -> tuple[list[ClientRow], list[ClientRow]]:
            created, updated = await import_batch(conn, rows)
            await self._check_order(conn, updated)
            await append_new_streams(conn, _imported_events(created, updated))
            return created, updated

        try:
            created, updated = await with_retries(
                self._pool, attempt, "import batch", policy=BATCH_CONFLICTS
            )
        except ConcurrentModification:
            raise ImportConflict(self._result) from None
        unchanged = len(rows) - len(created) - len(updated)
        self._result.created += len(created)
        self._result.updated += len(updated)
        self._result.unchanged += unchanged
        IMPORT_ROWS.labels("created").inc(len(created))
        IMPORT_ROWS.labels("updated").inc(len(updated))
        IMPORT_ROWS.labels("unchanged").inc(unchanged)

    @staticmethod
    async def _check_order(conn: Connection, updated: list[ClientRow]) -> None:
        # This transaction got its id at its first write, before it had locked the rows it
        # updates: a command or another import that got its id later may have locked, written
        # and committed one of these clients in between. Writing the next version after that
        # would put the client's versions out of order for readers that go by transaction id
        # (see gateway.clients.commands). A new transaction gets a newer id, so the batch is simply
        # retried. New clients need no check: nobody else knows them yet.
        if updated and await written_after_us(conn, [row.id for row in updated]):
            raise WrongExpectedVersion("<import batch>", None, None)  # retried


def _imported_events(
    created: list[ClientRow], updated: list[ClientRow], size: int = EVENT_SIZE
) -> list[ClientsImported]:
    """The ``clients.imported`` events of one committed batch: up to ``size`` clients each,
    every one at its version after the import."""
    items = [
        ImportedClient(
            client_id=row.id,
            version=row.version,
            created=is_new,
            phone=row.phone,
            operator_code=row.operator_code,
            tag=row.tag,
            time_zone=row.time_zone,
        )
        for rows, is_new in ((created, True), (updated, False))
        for row in rows
    ]
    if not items:
        return []
    # Every row the batch wrote has updated_at = now(), the start of its transaction.
    imported_at = (created or updated)[0].updated_at
    return [
        ClientsImported(batch_id=new_batch_id(), imported_at=imported_at, clients=list(chunk))
        for chunk in chunks(items, size)
    ]


async def parsed_lines(
    chunks: AsyncIterable[bytes],
    fmt: ImportFormat,
    csv_rows: CsvRows,
    result: ImportResult,
    *,
    max_line: int = MAX_LINE_BYTES,
    max_rows: int | None = None,
) -> AsyncGenerator[tuple[int, Any]]:
    """(line number, fields) of each data line of a streamed CSV or NDJSON body; overlong and
    malformed lines are rejected into ``result``, blank and header lines skipped. Raises
    ``ImportTooLarge`` past ``max_rows`` (what the caller committed before it stays)."""
    splitter = LineSplitter(max_line)

    def parsed(lines: list[tuple[int, bytes | None]]) -> Iterator[tuple[int, Any]]:
        for lineno, line in lines:
            if max_rows is not None and lineno > max_rows:
                raise ImportTooLarge("rows", max_rows)
            result.lines_read = lineno
            if line is None:
                result.reject(lineno, {NON_FIELD_ERRORS: [f"Line longer than {max_line} bytes."]})
                continue
            if lineno == 1 and line.startswith(_BOM):
                line = line[len(_BOM) :]
            try:
                data = csv_rows.parse(line) if fmt is ImportFormat.CSV else parse_ndjson_line(line)
            except InvalidInput as exc:
                result.reject(lineno, exc.errors)
                continue
            if data is not None:
                yield lineno, data

    async for chunk in chunks:
        for item in parsed(splitter.feed(chunk)):
            yield item
    for item in parsed(splitter.close()):
        yield item


def _row(line: int, data: Any) -> Row:
    change = parse_change(data, require_phone=True)
    assert isinstance(change.phone, str)  # require_phone guarantees it
    tag_given = not isinstance(change.tag, Unset)
    return (
        line,
        change.phone,
        None if isinstance(change.tag, Unset) else change.tag,
        tag_given,
        None if isinstance(change.time_zone, Unset) else change.time_zone,
    )


async def import_clients(
    pool: asyncpg.Pool,
    chunks: AsyncIterable[bytes],
    fmt: ImportFormat,
    *,
    batch_size: int = BATCH_SIZE,
    max_errors: int = MAX_ERRORS,
    max_line: int = MAX_LINE_BYTES,
    max_rows: int | None = None,
    result: ImportResult | None = None,
) -> ImportResult:
    """Import every line of ``chunks``; raises ``ImportConflict`` if a batch cannot commit.

    Counts go into ``result`` as each batch commits, so a job can report them while it runs.
    """
    result = result if result is not None else ImportResult(max_errors=max_errors)
    batches = _Batches(pool, result, batch_size)
    lines = parsed_lines(chunks, fmt, CsvRows(), result, max_line=max_line, max_rows=max_rows)
    try:
        async for lineno, data in lines:
            try:
                row = _row(lineno, data)
            except InvalidInput as exc:
                result.reject(lineno, exc.errors)
                continue
            if row[1] in batches.phones:
                await batches.flush()  # the earlier row with this phone must land first
            batches.add(row)
            if len(batches.rows) >= batches.size:
                await batches.flush()
        await batches.flush()
    finally:
        await lines.aclose()
        await batches.wait()  # never leave a commit running behind the caller's back
    IMPORT_ROWS.labels("rejected").inc(result.rejected)
    log.info(
        "clients_imported",
        format=fmt.name.lower(),
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        rejected=result.rejected,
    )
    return result
