"""Segment counts of known texts, as SMS providers bill them."""

from __future__ import annotations

import pytest

from sms_events.segments import Encoding, measure

GSM, UCS2 = Encoding.GSM7, Encoding.UCS2
EURO = "€"  # extension table: an escape and the character, two septets
EMOJI = "😀"  # outside the BMP: a surrogate pair, two UTF-16 units

KNOWN = [
    ("", GSM, 0, 0),
    ("Hello", GSM, 5, 1),
    ("Sale! 50% off @ shop", GSM, 20, 1),
    ("ÄÖÑÜ§¿äöñüàèéùìòÇØøÅåÆæßÉΔΦΓΛΩΠΨΣΘΞ£¥¤¡", GSM, 39, 1),
    ("line\nbreak\r", GSM, 11, 1),
    ("a" * 160, GSM, 160, 1),
    ("a" * 161, GSM, 161, 2),
    ("a" * 306, GSM, 306, 2),
    ("a" * 307, GSM, 307, 3),
    ("{[~^|\\]}" + EURO, GSM, 18, 1),
    (EURO * 80, GSM, 160, 1),
    (EURO * 81, GSM, 162, 2),
    # The escape may not be split: the euro starts the second part, which then overflows.
    ("a" * 152 + EURO + "a" * 152, GSM, 306, 3),
    ("Привет", UCS2, 6, 1),
    ("ç", UCS2, 1, 1),  # only the capital Ç is in the GSM table
    ("price `5`", UCS2, 9, 1),  # the backtick is not GSM either
    ("a" * 159 + "ж", UCS2, 160, 3),  # one Cyrillic letter makes the whole text UCS-2
    ("ж" * 70, UCS2, 70, 1),
    ("ж" * 71, UCS2, 71, 2),
    ("ж" * 134, UCS2, 134, 2),
    ("ж" * 135, UCS2, 135, 3),
    (EMOJI, UCS2, 2, 1),
    ("ж" * 68 + EMOJI, UCS2, 70, 1),
    ("ж" * 66 + EMOJI + "ж" * 65, UCS2, 133, 2),
    # A surrogate pair may not be split: the last unit spills into a third part.
    ("ж" * 66 + EMOJI + "ж" * 66, UCS2, 134, 3),
    ("€ and ₽", UCS2, 7, 1),  # the rouble sign is not GSM; the euro is then one unit
]


@pytest.mark.parametrize(("text", "encoding", "characters", "segments"), KNOWN)
def test_known_texts_have_the_providers_length_and_segments(
    text: str, encoding: Encoding, characters: int, segments: int
) -> None:
    length = measure(text)
    assert (length.encoding, length.characters, length.segments) == (
        encoding,
        characters,
        segments,
    )


def test_the_answer_fields_are_named_as_in_the_api() -> None:
    assert measure("Hi €").to_json() == {"encoding": "GSM-7", "characters": 5, "segments": 1}
