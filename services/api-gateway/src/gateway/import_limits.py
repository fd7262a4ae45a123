"""Caps on imports, so that no upload can fill the disk, run for ever or take every pooled
connection: bytes and lines per import, and imports at once per gateway process. Each is a
setting; the defaults admit a 1,000,000-row CSV."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "RETRY_AFTER_S",
    "ImportLimits",
    "ImportSlots",
    "ImportTooLarge",
    "TooManyImports",
    "capped",
    "declared_length_fits",
]

RETRY_AFTER_S: Final = 10


@dataclass(frozen=True, slots=True)
class ImportLimits:
    max_bytes: int
    max_rows: int
    max_concurrent: int


class ImportTooLarge(Exception):
    """Over a cap; the answer is 413 naming it."""

    def __init__(self, what: Literal["bytes", "rows"], limit: int) -> None:
        setting = "IMPORT_MAX_BYTES" if what == "bytes" else "IMPORT_MAX_ROWS"
        unit = "bytes" if what == "bytes" else "lines"
        super().__init__(f"The import is larger than {limit:,} {unit} ({setting}).")
        self.what = what


class TooManyImports(Exception):
    """Every import slot is taken; the answer is 429 with Retry-After."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"{limit} import(s) are already running (IMPORT_MAX_CONCURRENT); try again shortly."
        )


class ImportSlots:
    """Imports running at once in this process (requests and background jobs alike)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0

    def take(self) -> None:
        """Take a slot or raise ``TooManyImports``; ``give_back`` when the import ends."""
        if self.taken >= self.limit:
            raise TooManyImports(self.limit)
        self.taken += 1

    def give_back(self) -> None:
        self.taken -= 1


def declared_length_fits(content_length: str | None, limits: ImportLimits) -> None:
    """Refuse at once a body whose declared length is over the cap (nothing is read)."""
    declared = int(content_length) if content_length and content_length.isdigit() else 0
    if declared > limits.max_bytes:
        raise ImportTooLarge("bytes", limits.max_bytes)


async def capped(chunks: AsyncIterable[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """``chunks`` until they add up to more than ``max_bytes`` (then ``ImportTooLarge``)."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise ImportTooLarge("bytes", max_bytes)
        yield chunk
