"""How the /api/v1/ operations document their answers in the OpenAPI contract: the error
answers they share, JSON bodies and examples, and the result of a bulk import (clients or
opt-outs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, Field, RootModel

from gateway.clients.rules import PHONE_MESSAGE

__all__ = [
    "IMPORT_EXAMPLE",
    "IMPORT_LIMIT_ERRORS",
    "BadRequest",
    "ErrorDetail",
    "ImportErrorRow",
    "ImportResult",
    "json_body",
    "json_content",
    "responses",
]


class ErrorDetail(BaseModel):
    detail: str


class BadRequest(RootModel[dict[str, list[str]] | ErrorDetail]):
    """Either each invalid field with its messages, or ``detail`` for an unreadable body."""


class ImportErrorRow(BaseModel):
    line: int = Field(description="1-based line number in the file (a header row counts)")
    errors: dict[str, list[str]]


class ImportResult(BaseModel):
    created: int
    updated: int
    unchanged: int = Field(description="Rows equal to the stored client: nothing written")
    rejected: int
    errors: list[ImportErrorRow] = Field(description="The first 1000 rejected rows")


IMPORT_EXAMPLE: Final[dict[str, Any]] = {
    "created": 99_998,
    "updated": 1,
    "unchanged": 0,
    "rejected": 1,
    "errors": [{"line": 7, "errors": {"phone": [PHONE_MESSAGE]}}],
}


def json_body(
    model: type[BaseModel], examples: dict[str, Any], *, required: bool
) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body of ``model`` (endpoints parse it themselves)."""
    return {
        "requestBody": {
            "required": required,
            "content": {
                "application/json": {"schema": model.model_json_schema(), "examples": examples}
            },
        }
    }


def json_content(example: Any = None, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"example": example} if examples is None else {"examples": examples}
    return {"application/json": body}


_ERRORS: Final[dict[int, dict[str, Any]]] = {
    400: {
        "model": BadRequest,
        "description": "Invalid input: each bad field with its messages; nothing was stored",
        "content": json_content(
            examples={
                "invalid field": {"value": {"phone": [PHONE_MESSAGE]}},
                "duplicate phone": {
                    "value": {"phone": ["A client with this phone already exists."]}
                },
                "malformed JSON": {
                    "value": {"detail": "JSON parse error - unexpected character: line 1 column 2"}
                },
            }
        ),
    },
    401: {
        "model": ErrorDetail,
        "description": "Missing or wrong API key",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "example": "Bearer"}},
        "content": json_content({"detail": "Invalid API key."}),
    },
    403: {
        "model": ErrorDetail,
        "description": "The API key lacks the scope this operation needs (named in `detail`)",
        "content": json_content({"detail": "The API key 'crm' lacks the scope 'mailings:write'."}),
    },
    404: {
        "model": ErrorDetail,
        "description": "No such client (or no such page)",
        "content": json_content({"detail": "Not found."}),
    },
    409: {
        "model": ErrorDetail,
        "description": "The client kept changing concurrently; retry the request",
        "content": json_content({"detail": "The client was changed by another request; retry."}),
    },
    413: {
        "model": ErrorDetail,
        "description": "Body larger than 64 KiB",
        "content": json_content({"detail": "Request body too large (limit 65536 bytes)."}),
    },
    415: {
        "model": ErrorDetail,
        "description": "Unsupported Content-Type",
        "content": json_content({"detail": 'Unsupported media type "text/plain" in request.'}),
    },
}


# The caps of every bulk import (clients and opt-outs alike).
IMPORT_LIMIT_ERRORS: Final[dict[int, dict[str, Any]]] = {
    413: {
        "model": ErrorDetail,
        "description": "Over IMPORT_MAX_BYTES or IMPORT_MAX_ROWS (named in `detail`); a body "
        "over the byte cap by its Content-Length is not read, and past the line cap the "
        "batches before it stay imported",
        "content": json_content(
            {"detail": "The import is larger than 2,000,000 lines (IMPORT_MAX_ROWS)."}
        ),
    },
    429: {
        "model": ErrorDetail,
        "description": "IMPORT_MAX_CONCURRENT imports are running; try again after Retry-After",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "example": 10}},
        "content": json_content(
            {
                "detail": "4 import(s) are already running "
                "(IMPORT_MAX_CONCURRENT); try again shortly."
            }
        ),
    },
}


def responses(
    success: int,
    example: Any,
    model: type[BaseModel] | None,
    *errors: int,
    documented: Mapping[int, dict[str, Any]] | None = None,
    description: str = "Success",
) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of an operation: its success with an example, 401 and 403 (every
    operation needs a key with a scope), then ``errors``, each as ``documented`` (per status)
    or else as the client endpoints document it."""
    ok: dict[str, Any] = {"description": description}
    if model is not None:
        ok |= {"model": model, "content": json_content(example)}
    table = {**_ERRORS, **(documented or {})}
    return {success: ok, **{code: table[code] for code in (401, 403, *errors)}}
