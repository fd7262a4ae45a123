"""How long a text is as SMS: its encoding, its length in that encoding and its segments.

A text the GSM 03.38 default alphabet can write goes as GSM-7: one septet per character of the
basic table, two for the extension table (an escape, then the character). Any other character
makes the whole text UCS-2, counted in UTF-16 code units as providers bill it (an emoji outside
the Basic Multilingual Plane is two). One SMS holds 160 septets or 70 units; a longer text is
split into parts of 153 or 67 (the rest carries the concatenation header), and a part never
ends between the two halves of an escape or of a surrogate pair, so a part may hold one less.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["Encoding", "TextLength", "measure"]

# The basic table (the escape 0x1B itself is not a character a text may hold).
_GSM_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

# (one message, each part of a longer one)
_GSM_CAPACITY: Final = (160, 153)
_UCS2_CAPACITY: Final = (70, 67)


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class TextLength:
    """``characters``: septets (GSM-7) or UTF-16 code units (UCS-2); ``segments``: SMS parts."""

    encoding: Encoding
    characters: int
    segments: int

    def to_json(self) -> dict[str, str | int]:
        return {
            "encoding": self.encoding.value,
            "characters": self.characters,
            "segments": self.segments,
        }


def _units(text: str) -> tuple[Encoding, list[int]]:
    """The encoding, and the width of each character in it (1 or 2)."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text):
        return Encoding.GSM7, [2 if c in _GSM_EXTENSION else 1 for c in text]
    return Encoding.UCS2, [2 if ord(c) > 0xFFFF else 1 for c in text]


def _parts(widths: list[int], part: int) -> int:
    """Parts of ``part`` units filled greedily, a character never split across two."""
    parts, used = 1, 0
    for width in widths:
        if used + width > part:
            parts, used = parts + 1, 0
        used += width
    return parts


def measure(text: str) -> TextLength:
    """The encoding, length and number of SMS segments of ``text`` (0 for an empty text)."""
    encoding, widths = _units(text)
    single, part = _GSM_CAPACITY if encoding is Encoding.GSM7 else _UCS2_CAPACITY
    length = sum(widths)
    if length == 0:
        segments = 0
    elif length <= single:
        segments = 1
    else:
        segments = _parts(widths, part)
    return TextLength(encoding, length, segments)
