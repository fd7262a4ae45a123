"""Client imports as background jobs: the upload spooled to a temporary file, imported by a task
of the gateway process that received it, its progress a row of ``gateway_import_jobs``.

The request only uploads: the body is copied to disk chunk by chunk (memory stays at one chunk
whatever the file), the job row is written, and the answer is ``202`` with the job's URL. The
import then reads the file with the same streamed importer as a synchronous import, and a
ticker writes the counts, bytes and lines read and the errors so far about once a second; that
write is the job's heartbeat.

A gateway that stops while a job runs fails the job, it does not resume it. On a graceful stop
the job is marked failed at once; after a crash (kill -9, a lost node) its heartbeat stops and
the first read more than ``STALE_AFTER_S`` later marks it failed. Resuming would need the upload
itself to outlive the process: on a shared volume or in PostgreSQL, which grows with the file,
for every import, to save a re-upload in the rare case of a stop. A re-upload is safe and cheap:
the batches committed before the stop stay, and importing the same file again changes nothing
for them (the failed job's counts say how far it got).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Final
from uuid import UUID, uuid4

import asyncpg
import structlog

from gateway.clients.importer import ImportConflict, ImportFormat, ImportResult, import_clients
from gateway.import_limits import ImportLimits, ImportSlots, ImportTooLarge, capped

__all__ = [
    "PROGRESS_EVERY_S",
    "STALE_AFTER_S",
    "ImportJob",
    "ImportJobs",
    "JobState",
    "parse_job_id",
    "prefers_async",
]

log = structlog.get_logger(__name__)

CHUNK_BYTES: Final = 64 * 1024
PROGRESS_EVERY_S: Final = 1.0
STALE_AFTER_S: Final = 30.0
"""A running job whose heartbeat is older is one whose gateway died (30 heartbeats missed)."""

CONFLICT_ERROR: Final = (
    "A batch kept conflicting with concurrent changes and was not imported. The counts cover "
    "the batches committed before it; importing the file again is safe."
)
STOPPED_ERROR: Final = (
    "The gateway running this import stopped. The counts cover the batches committed before "
    "it; importing the file again is safe."
)
INTERNAL_ERROR: Final = "The import failed on an internal error; importing the file again is safe."


class JobState(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self is not JobState.RUNNING


def prefers_async(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header (RFC 7240) asks for ``respond-async``."""
    tokens = (
        part.split(";")[0].split("=")[0].strip().lower() for part in (prefer or "").split(",")
    )
    return "respond-async" in tokens


def parse_job_id(raw: str) -> UUID | None:
    """The job id in a path; anything but a UUID is an id no job has."""
    try:
        return UUID(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class ImportJob:
    id: UUID
    state: JobState
    format: str
    bytes_total: int
    bytes_read: int
    rows_read: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[dict[str, Any]]
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ImportJob:
        values = dict(row)  # errors: a list already, by the pool's jsonb codec
        values["state"] = JobState(values["state"])
        return cls(**values)

    @property
    def percent(self) -> float:
        """How much of the upload the importer has read, 0 to 100; 99 at most until the job
        succeeds, as the last batches still commit after the last byte was read."""
        if self.state is JobState.SUCCEEDED:
            return 100.0
        if not self.bytes_total:
            return 0.0
        return min(99.0, 100.0 * self.bytes_read / self.bytes_total)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "state": str(self.state),
            "format": self.format,
            "bytes_total": self.bytes_total,
            "bytes_read": self.bytes_read,
            "rows_read": self.rows_read,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "errors": self.errors,
            "error": self.error,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }


_COLUMNS: Final = (
    "id, state, format, bytes_total, bytes_read, rows_read, created, updated, unchanged, "
    "rejected, errors, error, created_at, finished_at"
)


class _Run:
    """One job's live figures: the importer's result and the bytes it has taken from the file."""

    def __init__(self, spool: IO[bytes]) -> None:
        self.spool = spool
        self.result = ImportResult()
        self.bytes_read = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        # Reads of the local temporary file come from the page cache; not worth a thread each.
        while chunk := self.spool.read(CHUNK_BYTES):
            self.bytes_read += len(chunk)
            yield chunk


class ImportJobs:
    """The import jobs of this gateway process: starts them, saves their progress, and fails
    the ones still running when it closes."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        limits: ImportLimits,
        *,
        progress_every_s: float = PROGRESS_EVERY_S,
    ) -> None:
        self._pool = pool
        self.limits = limits
        # Requests and jobs alike: an import holds its slot until its last batch commits.
        self.slots = ImportSlots(limits.max_concurrent)
        self._every = progress_every_s
        self._tasks: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """An import slot for the block (``TooManyImports`` when none is free)."""
        self.slots.take()
        try:
            yield
        finally:
            self.slots.give_back()

    async def start(self, body: AsyncIterable[bytes], fmt: ImportFormat) -> ImportJob:
        """Spool ``body`` to disk (``ImportTooLarge`` past the byte cap: nothing is recorded),
        record the job, and start importing it in the background, in an import slot that it
        holds until it ends (``TooManyImports`` when none is free)."""
        self.slots.take()
        spool = tempfile.TemporaryFile()  # noqa: SIM115 (the job's task closes it)
        try:
            total = 0
            async for chunk in capped(body, self.limits.max_bytes):
                spool.write(chunk)
                total += len(chunk)
            spool.seek(0)
            row = await self._pool.fetchrow(
                f"INSERT INTO gateway_import_jobs (id, state, format, bytes_total) "
                f"VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
                uuid4(),
                JobState.RUNNING,
                fmt.name.lower(),
                total,
            )
        except BaseException:
            spool.close()
            self.slots.give_back()
            raise
        assert row is not None  # INSERT ... RETURNING
        job = ImportJob.from_row(row)
        task = asyncio.create_task(self._run(job.id, spool, fmt), name=f"import-job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("import_job_started", job_id=str(job.id), bytes=total, format=job.format)
        return job

    async def get(self, job_id: UUID) -> ImportJob | None:
        """The job as last saved; a running one whose heartbeat stopped is failed first."""
        await self._pool.execute(
            "UPDATE gateway_import_jobs SET state = $2, error = $3, finished_at = now() "
            "WHERE id = $1 AND state = $4 AND heartbeat_at < now() - make_interval(secs => $5)",
            job_id,
            JobState.FAILED,
            STOPPED_ERROR,
            JobState.RUNNING,
            STALE_AFTER_S,
        )
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM gateway_import_jobs WHERE id = $1", job_id
        )
        return ImportJob.from_row(row) if row else None

    async def close(self) -> None:
        """Stop the jobs still running; each marks itself failed before it ends."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, job_id: UUID, spool: IO[bytes], fmt: ImportFormat) -> None:
        run = _Run(spool)
        ticker = asyncio.create_task(self._tick(job_id, run))
        state, error = JobState.FAILED, INTERNAL_ERROR  # until the import says otherwise
        try:
            await import_clients(
                self._pool, run.chunks(), fmt, max_rows=self.limits.max_rows, result=run.result
            )
            state, error = JobState.SUCCEEDED, ""
        except ImportConflict:
            error = CONFLICT_ERROR
        except ImportTooLarge as exc:
            error = str(exc)
        except asyncio.CancelledError:
            error = STOPPED_ERROR
            raise
        except Exception as exc:
            # The type only: a message could quote a row, and so a phone number.
            log.error("import_job_error", job_id=str(job_id), error=type(exc).__name__)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            spool.close()
            self.slots.give_back()
            try:
                await self._save(job_id, run, state, error or None)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The row keeps its last progress and reads as failed once it is stale: safe,
                # since importing the file again changes nothing that was committed.
                log.error(
                    "import_job_result_not_saved", job_id=str(job_id), error=type(exc).__name__
                )
            log.info(
                "import_job_finished",
                job_id=str(job_id),
                state=str(state),
                created=run.result.created,
                updated=run.result.updated,
                rejected=run.result.rejected,
            )

    async def _tick(self, job_id: UUID, run: _Run) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self._save(job_id, run, JobState.RUNNING, None)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The import itself retries or fails on the database; the next tick tries again.
                log.warning("import_job_progress_not_saved", error=type(exc).__name__)

    async def _save(self, job_id: UUID, run: _Run, state: JobState, error: str | None) -> None:
        result = run.result
        await self._pool.execute(
            "UPDATE gateway_import_jobs SET state = $2, bytes_read = $3, rows_read = $4, "
            "created = $5, updated = $6, unchanged = $7, rejected = $8, errors = $9, "
            "error = $10, heartbeat_at = now(), "
            "finished_at = CASE WHEN $2 = $11 THEN NULL ELSE now() END "
            "WHERE id = $1 AND state = $11",
            job_id,
            state,
            run.bytes_read,
            result.lines_read,
            result.created,
            result.updated,
            result.unchanged,
            result.rejected,
            result.errors,
            error,
            JobState.RUNNING,
        )
