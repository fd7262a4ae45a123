"""The errors the gateway's rules and commands raise, and the one mapping from each to its HTTP
status, read by the API's error handlers and by the admin pages alike.

The statuses are the old Django REST framework API's, which the public /api/v1/ contract keeps:
bad input is 400 with each field and its messages; a change the mailing's state refuses (an edit
after the start, pausing a cancelled mailing) is 400 too, with ``detail`` saying why, as DRF
answered every ``ValidationError``; an unknown id is 404; a stream that kept moving under a
command is 409 (retrying the same request may succeed, which is what 409 tells a client).
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic_core import ErrorDetails

from gateway.responses import JSON

__all__ = [
    "NON_FIELD_ERRORS",
    "NOT_NULL",
    "NOT_STRING",
    "NULL_CHARACTER",
    "REQUIRED",
    "ConcurrentModification",
    "DomainError",
    "Errors",
    "InvalidInput",
    "NotFound",
    "drf_errors",
    "install",
    "sentence",
    "status_of",
]

Errors = dict[str, list[str]]
"""Field name -> messages, the body of a 400 answer (Django REST framework's shape)."""

NON_FIELD_ERRORS: Final = "non_field_errors"
REQUIRED: Final = "This field is required."
NOT_NULL: Final = "This field may not be null."
NOT_STRING: Final = "Not a valid string."
NULL_CHARACTER: Final = "Null characters are not allowed."


class InvalidInput(ValueError):
    """The input breaks one or more rules; ``errors`` says which, per field."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(", ".join(sorted(errors)))
        self.errors = errors


class DomainError(Exception):
    """A request that the rules refuse in the current state; ``str(error)`` is a reason fit
    to show a user."""


class NotFound(LookupError):
    """No such thing (never was, or deleted, or an id nothing can have)."""


class ConcurrentModification(RuntimeError):
    """A stream kept moving under a command; the caller may retry the request."""

    def __init__(self, subject: str = "client") -> None:
        super().__init__(f"the {subject} was modified concurrently")
        self.subject = subject


_STATUS: Final[tuple[tuple[type[Exception], int], ...]] = (
    (InvalidInput, 400),
    (DomainError, 400),
    (NotFound, 404),
    (ConcurrentModification, 409),
)


def status_of(error: Exception) -> int:
    """The HTTP status of one of the errors above (500 for anything else)."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def sentence(reason: str) -> str:
    """``"a paused mailing cannot be paused"`` -> ``"A paused mailing cannot be paused."``"""
    text = reason.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _message(error: ErrorDetails) -> str:
    if error["type"] == "missing":
        return REQUIRED
    if error["type"] == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])  # a rule's own message, without pydantic's prefix
    return error["msg"]


def drf_errors(errors: list[ErrorDetails], *, not_an_object: str | None = None) -> Errors:
    """pydantic's errors in Django REST framework's shape: each field with its messages, in
    the words of the rule that failed; ``not_an_object`` for a body that is no JSON object."""
    found: Errors = {}
    for error in errors:
        loc = [str(part) for part in error["loc"] if part not in ("body", "query", "path")]
        if not loc and not_an_object is not None and error["type"] in ("model_type", "dict_type"):
            found.setdefault(NON_FIELD_ERRORS, []).append(not_an_object)
            continue
        found.setdefault(loc[0] if loc else NON_FIELD_ERRORS, []).append(_message(error))
    return found


def install(app: FastAPI) -> None:
    """The API's answers to the errors above, and to FastAPI's own validation errors."""

    async def invalid_input(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidInput)
        return JSON(exc.errors, status_code=status_of(exc))

    async def request_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return JSON(drf_errors(list(exc.errors())), status_code=400)

    async def not_found(_: Request, exc: Exception) -> Response:
        return JSON({"detail": "Not found."}, status_code=status_of(exc))

    async def conflict(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConcurrentModification)
        detail = f"The {exc.subject} was changed by another request at the same time; retry."
        return JSON({"detail": detail}, status_code=status_of(exc))

    async def refused(_: Request, exc: Exception) -> Response:
        return JSON({"detail": sentence(str(exc))}, status_code=status_of(exc))

    app.add_exception_handler(InvalidInput, invalid_input)
    app.add_exception_handler(RequestValidationError, request_validation)
    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(ConcurrentModification, conflict)
    app.add_exception_handler(DomainError, refused)
