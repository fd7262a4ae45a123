"""HTML form fields to and from the bodies the gateway's commands take: plain functions.

Dates are shown and typed in the admin's zone (``ADMIN_TIME_ZONE``) with ``datetime-local``
inputs, to the minute; the commands get ISO 8601 with the offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, tzinfo
from typing import Any, Final

from gateway.errors import NON_FIELD_ERRORS, Errors
from gateway.mailings.repository import MailingRow

__all__ = [
    "CLIENT_FIELDS",
    "MAILING_FIELDS",
    "client_body",
    "client_values",
    "field_errors",
    "mailing_body",
    "mailing_changes",
    "mailing_values",
]

MAILING_FIELDS: Final = (
    "text",
    "datetime_start",
    "datetime_end",
    "send_interval_time_start",
    "send_interval_time_end",
    "client_filter",
)
CLIENT_FIELDS: Final = ("phone", "tag", "time_zone")
_DATETIMES: Final = ("datetime_start", "datetime_end")
_TIMES: Final = ("send_interval_time_start", "send_interval_time_end")
_LOCAL_FORMAT: Final = "%Y-%m-%dT%H:%M"
BAD_DATETIME: Final = "Enter a date and time, e.g. 2024-05-01 09:30."


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _local(value: datetime, zone: tzinfo) -> str:
    return value.astimezone(zone).strftime(_LOCAL_FORMAT)


def _time(value: time | None) -> str:
    return value.strftime("%H:%M") if value is not None else ""


def mailing_values(row: MailingRow | None, zone: tzinfo) -> dict[str, str]:
    """The form's initial values (empty for a new mailing)."""
    if row is None:
        return dict.fromkeys(MAILING_FIELDS, "")
    return {
        "text": row.text,
        "datetime_start": _local(row.datetime_start, zone),
        "datetime_end": _local(row.datetime_end, zone),
        "send_interval_time_start": _time(row.send_interval_time_start),
        "send_interval_time_end": _time(row.send_interval_time_end),
        "client_filter": row.client_filter or "",
    }


def mailing_body(form: Mapping[str, Any], zone: tzinfo) -> tuple[dict[str, Any], Errors]:
    """The command body of a submitted mailing form, and the errors found on the way (dates
    the browser did not send in its own format). Blank optional fields are null."""
    body: dict[str, Any] = {}
    errors: Errors = {}
    for name in MAILING_FIELDS:
        value = _text(form, name)
        if name in _DATETIMES:
            if not value:
                continue  # the command says "This field is required."
            try:
                parsed = datetime.strptime(value[:16], _LOCAL_FORMAT).replace(tzinfo=zone)
            except ValueError:
                errors[name] = [BAD_DATETIME]
                continue
            body[name] = parsed.isoformat()
        elif name in _TIMES or name == "client_filter":
            body[name] = value or None
        else:
            body[name] = value
    return body, errors


def mailing_changes(
    form: Mapping[str, Any], current: MailingRow, zone: tzinfo
) -> tuple[dict[str, Any], Errors]:
    """Only the fields the user changed: a started mailing refuses any change but its end,
    and an untouched start must not count as one (the form shows it to the minute)."""
    before = mailing_values(current, zone)
    body, errors = mailing_body(form, zone)
    changed = {name for name in MAILING_FIELDS if _text(form, name) != before[name]}
    return {k: v for k, v in body.items() if k in changed}, {
        k: v for k, v in errors.items() if k in changed
    }


def client_values(row: Any | None) -> dict[str, str]:
    if row is None:
        return {"phone": "", "tag": "", "time_zone": "UTC"}
    return {"phone": row.phone, "tag": row.tag or "", "time_zone": row.time_zone}


def client_body(form: Mapping[str, Any]) -> dict[str, Any]:
    """A blank tag means no tag; a blank time zone keeps the current one (UTC when new)."""
    body: dict[str, Any] = {"phone": _text(form, "phone"), "tag": _text(form, "tag") or None}
    if zone := _text(form, "time_zone"):
        body["time_zone"] = zone
    return body


def field_errors(errors: Errors) -> tuple[dict[str, list[str]], list[str]]:
    """(messages per field, messages about the whole form)."""
    general = list(errors.get(NON_FIELD_ERRORS, []))
    detail = errors.get("detail")
    if detail:
        general += detail
    fields = {k: v for k, v in errors.items() if k not in (NON_FIELD_ERRORS, "detail")}
    return fields, general
