"""The suppression list in the admin, over plain HTTP against the gateway process: the list shows
every source, the form records the admin (source ``admin``, the admin's identity in the
event's metadata), a bad phone is a field's message, removing needs the session's token, a CSV
upload answers its counts, and the new-mailing forecast says how many are left out."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from gateway.clients.rules import PHONE_MESSAGE
from sms_events.testing.environment import TestEnvironment

from .admin_support import ADMIN_EMAIL, API_KEY, Gateway, csrf_of, local


def _phone() -> str:
    return f"7966{random.randrange(10**7):07d}"


@pytest.fixture
def api(gateway: Gateway) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as client:
        yield client


def _opted_out(api: httpx.Client, phone: str, reason: str | None = None) -> None:
    assert api.post("/api/v1/opt-outs/", json={"phone": phone, "reason": reason}).status_code == 201


def _entry(api: httpx.Client, phone: str) -> dict[str, Any] | None:
    resp = api.get(f"/api/v1/opt-outs/{phone}")
    assert resp.status_code in (200, 404), resp.text
    return resp.json() if resp.status_code == 200 else None


def _events(admin_env: TestEnvironment, phone: str) -> list[tuple[str, dict[str, Any]]]:
    with psycopg.connect(admin_env.database_url) as conn:
        rows = conn.execute(
            "SELECT type, metadata FROM events WHERE stream_id = %s ORDER BY stream_version",
            (f"opt_out-{phone}",),
        ).fetchall()
    return [(kind, metadata) for kind, metadata in rows]


def _figure(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}">([^<]*)<', html)
    assert match, f"no {testid} on the page"
    return match.group(1)


def test_the_list_shows_a_phone_opted_out_through_the_api(
    admin: httpx.Client, api: httpx.Client
) -> None:
    phone = _phone()
    _opted_out(api, phone, "asked by phone")
    page = admin.get("/admin/opt-outs")
    assert page.status_code == 200
    assert 'href="/admin/opt-outs" aria-current="page"' in page.text  # in the navigation
    row = re.search(rf'<tr data-phone="{phone}">(.*?)</tr>', page.text, re.S)
    assert row, "the phone is not on the first page (newest first)"
    assert "asked by phone" in row.group(1) and ">api<" in row.group(1)
    assert f"+{phone}" in admin.get("/admin/opt-outs?source=api").text
    assert f"+{phone}" not in admin.get("/admin/opt-outs?source=inbound").text


def test_adding_a_phone_records_it_as_the_admin(
    admin: httpx.Client, api: httpx.Client, admin_env: TestEnvironment
) -> None:
    phone = _phone()
    token = csrf_of(admin.get("/admin/opt-outs").text)
    form = {"phone": f" +{phone} ", "reason": "complaint", "csrf_token": token}
    resp = admin.post("/admin/opt-outs", data=form)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/admin/opt-outs?notice=added"
    entry = _entry(api, phone)
    assert entry and entry["source"] == "admin" and entry["reason"] == "complaint"
    [(kind, metadata)] = _events(admin_env, phone)
    assert kind == "opt_out.recorded"
    assert metadata["actor"]["type"] == "oidc" and metadata["actor"]["email"] == ADMIN_EMAIL

    again = admin.post("/admin/opt-outs", data=form)
    assert again.status_code == 200
    assert f"+{phone} is already on the suppression list (source admin)." in again.text
    assert len(_events(admin_env, phone)) == 1


def test_a_bad_phone_or_reason_is_the_fields_message_and_nothing_is_recorded(
    admin: httpx.Client, api: httpx.Client
) -> None:
    token = csrf_of(admin.get("/admin/opt-outs").text)
    resp = admin.post("/admin/opt-outs", data={"phone": "8999123", "csrf_token": token})
    assert resp.status_code == 400
    assert PHONE_MESSAGE in resp.text and 'value="8999123"' in resp.text  # what was typed stays
    resp = admin.post("/admin/opt-outs", data={"phone": "", "csrf_token": token})
    assert resp.status_code == 400 and "This field is required." in resp.text
    phone = _phone()
    data = {"phone": phone, "reason": "x" * 201, "csrf_token": token}
    resp = admin.post("/admin/opt-outs", data=data)
    assert resp.status_code == 400 and "no more than 200 characters" in resp.text
    assert _entry(api, phone) is None


def test_removing_a_phone_needs_the_sessions_token(admin: httpx.Client, api: httpx.Client) -> None:
    phone = _phone()
    _opted_out(api, phone)
    page = admin.get("/admin/opt-outs").text
    assert f'data-confirm="Take +{phone} off the suppression list?' in page
    refused = admin.post("/admin/opt-outs/remove", data={"phone": phone})
    assert refused.status_code == 403 and "Request refused" in refused.text
    assert _entry(api, phone) is not None

    data = {"phone": phone, "csrf_token": csrf_of(page)}
    resp = admin.post("/admin/opt-outs/remove", data=data)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/admin/opt-outs?notice=removed"
    assert _entry(api, phone) is None
    assert "taken off the suppression list" in admin.get(resp.headers["location"]).text
    gone = admin.post("/admin/opt-outs/remove", data=data)
    assert gone.status_code == 404 and "Opt-out not found" in gone.text


def test_a_csv_upload_answers_its_counts_and_first_errors(
    admin: httpx.Client, api: httpx.Client
) -> None:
    listed, new = _phone(), [_phone(), _phone()]
    _opted_out(api, listed)
    csv = f"phone,reason\n{new[0]},complaint\n{new[1]},\n{listed},again\n12345,bad\n"
    token = csrf_of(admin.get("/admin/opt-outs/import").text)
    files = {"file": ("opt-outs.csv", csv.encode(), "text/csv")}
    # The token rides in the form action's query string (as the page's form sends it), so it
    # is checked before the upload is parsed; in the body alone it is not enough.
    in_body = admin.post("/admin/opt-outs/import", data={"csrf_token": token}, files=files)
    assert in_body.status_code == 403
    assert _entry(api, new[0]) is None
    url = f"/admin/opt-outs/import?csrf_token={token}"
    resp = admin.post(url, files=files)
    assert resp.status_code == 200, resp.text[:500]
    counts = {k: _figure(resp.text, k) for k in ("created", "unchanged", "rejected")}
    assert counts == {"created": "2", "unchanged": "1", "rejected": "1"}
    errors = re.search(r'data-testid="import-errors">(.*?)</table>', resp.text, re.S)
    assert errors and ">5<" in errors.group(1) and PHONE_MESSAGE in errors.group(1)
    entry = _entry(api, new[0])
    assert entry and entry["source"] == "import" and entry["reason"] == "complaint"

    no_file = admin.post(url, data={"x": "y"}, files={})
    assert no_file.status_code == 400 and "Choose a file to import." in no_file.text
    forged = admin.post("/admin/opt-outs/import?csrf_token=forged", files=files)
    assert forged.status_code == 403
    by_header = admin.post("/admin/opt-outs/import", headers={"X-CSRF-Token": token}, files=files)
    assert by_header.status_code == 200


def test_the_forecast_says_how_many_opted_out_clients_are_left_out(
    admin: httpx.Client, api: httpx.Client
) -> None:
    tag = f"oo{random.randrange(10**6)}"
    phones = [_phone() for _ in range(3)]
    body = "phone,tag,time_zone\n" + "".join(f"{p},{tag},UTC\n" for p in phones)
    resp = api.post("/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"})
    assert resp.status_code == 200 and resp.json()["created"] == 3, resp.text
    start = datetime.now(UTC) + timedelta(hours=1)
    form = {
        "text": "Sale today",
        "datetime_start": local(start),
        "datetime_end": local(start + timedelta(days=1)),
        "client_filter": tag,
        "csrf_token": csrf_of(admin.get("/admin/mailings/new").text),
    }
    before = admin.post("/admin/mailings/preview", data=form)
    assert _figure(before.text, "preview-total") == "3"
    assert "preview-opted-out" not in before.text

    _opted_out(api, phones[0])
    after = admin.post("/admin/mailings/preview", data=form)
    assert after.status_code == 200
    assert _figure(after.text, "preview-total") == "2"
    assert _figure(after.text, "preview-opted-out").startswith("1 opted out, left out")
