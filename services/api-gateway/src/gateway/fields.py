"""What the request bodies of every aggregate share: ``Unset`` for a field left out."""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["UNSET", "Unset"]


class Unset(enum.Enum):
    """Marks a field the caller did not send (different from sending ``null``)."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET
