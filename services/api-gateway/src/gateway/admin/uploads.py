"""A file uploaded through an admin import form (clients, opt-outs): refused unread when its
declared size is over the import cap, then read a chunk at a time; its name tells CSV from
NDJSON. The refusals are the import's limits, answered with the same statuses as the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from starlette.datastructures import UploadFile

from gateway.admin.web import Page, posted_upload_form
from gateway.clients.importer import ImportFormat
from gateway.import_limits import ImportLimits, ImportTooLarge, TooManyImports, declared_length_fits

__all__ = ["REFUSALS", "NoFileChosen", "chunks", "posted_upload", "refusal_status", "upload_format"]

CHUNK_BYTES: Final = 64 * 1024


class NoFileChosen(Exception):
    """The form came without a file (a 400)."""

    def __init__(self) -> None:
        super().__init__("Choose a file to import.")


REFUSALS: Final = (ImportTooLarge, TooManyImports, NoFileChosen)
_STATUS: Final = {ImportTooLarge: 413, TooManyImports: 429, NoFileChosen: 400}


def refusal_status(exc: Exception) -> int:
    """The HTTP status of one of ``REFUSALS``."""
    return _STATUS[type(exc)]


async def posted_upload(page: Page, limits: ImportLimits) -> UploadFile:
    """The form's ``file`` once CSRF is checked; ``ImportTooLarge`` or ``NoFileChosen``."""
    # Both checked before the form is parsed (and spooled): a body over the cap, or one
    # without the session's token, is not read.
    declared_length_fits(page.request.headers.get("content-length"), limits)
    form = await posted_upload_form(page)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise NoFileChosen
    return upload


async def chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK_BYTES):
        yield chunk


def upload_format(upload: UploadFile) -> ImportFormat:
    name = (upload.filename or "").lower()
    if name.endswith((".ndjson", ".jsonl")):
        return ImportFormat.NDJSON
    return ImportFormat.CSV
