"""What the request bodies of every aggregate share: validation by the pydantic model that
documents the body, with the old API's 400 (``InvalidInput`` naming each field), and ``Unset``
for a field a request left out.

Each field of a request model carries its rule as a ``BeforeValidator``: a plain function of
the aggregate's ``rules`` that raises ``ValueError`` with the old API's message (pydantic's own
checks, run after it, then always pass; they are there for the contract's schema). So one
declaration both validates and documents, and the messages are Django REST framework's.
"""

from __future__ import annotations

import enum
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.errors import InvalidInput, drf_errors

__all__ = ["UNSET", "Unset", "given", "validate"]

M = TypeVar("M", bound=BaseModel)


class Unset(enum.Enum):
    """Marks a field the caller did not send (different from sending ``null``)."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET


def validate(model: type[M], data: Any, *, not_an_object: str) -> M:
    """``data`` (a decoded JSON body or an import row) validated by ``model``; unknown keys are
    ignored, as DRF does. Raises ``InvalidInput`` with every broken rule at once, and
    ``not_an_object`` when ``data`` is no object."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(drf_errors(exc.errors(), not_an_object=not_an_object)) from None


def given(body: BaseModel) -> dict[str, Any]:
    """The fields the request sent (defaults left out), by name."""
    return {name: getattr(body, name) for name in body.model_fields_set}
