"""Roles in the running admin: a viewer reads every page and every change it attempts is 403
(the change routes are listed from the admin's own routers, so a new one cannot be left out);
an operator changes but sees neither the audit nor the sessions; an admin sees on a mailing and
on a client who did what."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gateway.admin import ROUTERS
from gateway.admin.roles import Permission, Role, may
from gateway.admin.web import Needs

from .admin_support import (
    ADMIN_EMAIL,
    API_KEY,
    OPERATOR_EMAIL,
    READER_EMAIL,
    Gateway,
    csrf_of,
    logged_in,
)

# Routes that work without a session: they are how one gets one, or ends it.
LOGIN_ROUTES = {
    "/admin/login",
    "/admin/auth/login",
    "/admin/auth/callback",
    "/admin/auth/dev-login",
    "/admin/logout",
    "/admin/logged-out",
}


def _routes() -> list[tuple[str, str, list[Permission]]]:
    found = []
    for router in ROUTERS:
        for route in router.routes:
            needs = [
                d.call.permission for d in route.dependant.dependencies if isinstance(d.call, Needs)
            ]
            for method in route.methods:
                found.append((method, route.path, needs))
    return found


def test_every_admin_route_declares_one_permission_and_every_change_needs_an_operator() -> None:
    routes = _routes()
    assert len(routes) > 20
    for method, path, needs in routes:
        if path in LOGIN_ROUTES:
            assert needs == [], path
            continue
        assert len(needs) == 1, f"{method} {path} must declare exactly one Needs(...)"
        if method != "GET":
            assert not may(Role.VIEWER, needs[0]), f"{method} {path} lets a viewer change"


def _phone() -> str:
    return f"7999{random.randrange(10**7):07d}"


@pytest.fixture(scope="module")
def records(gateway: Gateway) -> dict[str, int]:
    """A client and a mailing made with the API key (actor: the key's name, ``key-1``)."""
    start = datetime.now(UTC) + timedelta(days=1)
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=15
    ) as api:
        client = api.post("/api/v1/clients/", json={"phone": _phone(), "tag": "roles"})
        mailing = api.post(
            "/api/v1/mailings/",
            json={
                "text": "Roles",
                "datetime_start": start.isoformat(),
                "datetime_end": (start + timedelta(hours=1)).isoformat(),
            },
        )
    assert client.status_code == 201 and mailing.status_code == 201, (client.text, mailing.text)
    return {"client_id": client.json()["id"], "mailing_id": mailing.json()["id"]}


@pytest.fixture
def viewer(gateway: Gateway) -> Iterator[httpx.Client]:
    with logged_in(gateway.url, READER_EMAIL) as client:
        yield client


@pytest.fixture
def operator(gateway: Gateway) -> Iterator[httpx.Client]:
    with logged_in(gateway.url, OPERATOR_EMAIL) as client:
        yield client


def _concrete(path: str, ids: dict[str, int]) -> str:
    values = {
        "mailing_id": str(ids["mailing_id"]),
        "client_id": str(ids["client_id"]),
        "action": "cancel",
        "job_id": "00000000-0000-0000-0000-000000000000",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def test_a_viewer_reads_every_page_without_a_control_to_change(
    viewer: httpx.Client, records: dict[str, int]
) -> None:
    client_id, mailing_id = records["client_id"], records["mailing_id"]
    for path in (
        "/admin",
        "/admin/mailings",
        f"/admin/mailings/{mailing_id}",
        "/admin/clients?tag=roles",
        f"/admin/clients/{client_id}/edit",
        "/admin/opt-outs",
    ):
        resp = viewer.get(path)
        assert resp.status_code == 200, path
        assert 'data-testid="role">viewer<' in resp.text
        for control in ("new-mailing", "new-client", "action-cancel", "resend", "delete-", "save"):
            assert f'data-testid="{control}' not in resp.text, (path, control)
        assert 'data-testid="history"' not in resp.text and "nav-sessions" not in resp.text
    assert "disabled" in viewer.get(f"/admin/clients/{client_id}/edit").text


def test_a_viewer_gets_403_on_every_change_even_with_a_valid_form(
    viewer: httpx.Client, records: dict[str, int]
) -> None:
    token = csrf_of(viewer.get("/admin/mailings").text)
    refused = [(m, p) for m, p, needs in _routes() if needs and not may(Role.VIEWER, needs[0])]
    assert sum(m == "POST" for m, _ in refused) >= 12
    for method, path in refused:
        url = _concrete(path, records)
        if method == "GET":  # the forms of a change
            resp = viewer.get(url)
        else:
            data = {"csrf_token": token, "phone": _phone(), "text": "x", "subject": "anyone"}
            resp = viewer.request(method, url, data=data)
        assert resp.status_code == 403, (method, url, resp.status_code)
        assert "Not allowed" in resp.text
    # Nothing changed: the mailing is not cancelled, the client still there.
    page = viewer.get(f"/admin/mailings/{records['mailing_id']}").text
    assert 'data-testid="state">scheduled<' in page
    assert viewer.get(f"/admin/clients/{records['client_id']}/edit").status_code == 200


def test_an_operator_changes_but_sees_no_audit_and_no_sessions(
    operator: httpx.Client, records: dict[str, int]
) -> None:
    form = operator.get("/admin/clients/new").text
    assert 'data-testid="role">operator<' in form
    phone = _phone()
    resp = operator.post("/admin/clients/new", data={"phone": phone, "csrf_token": csrf_of(form)})
    assert resp.status_code == 303
    assert f"+{phone}" in operator.get(f"/admin/clients?phone={phone}").text
    assert operator.get("/admin/sessions").status_code == 403
    token = csrf_of(form)
    revoke = operator.post("/admin/sessions/revoke", data={"csrf_token": token, "subject": "x"})
    assert revoke.status_code == 403
    page = operator.get(f"/admin/mailings/{records['mailing_id']}").text
    assert 'data-testid="action-pause"' in page
    assert 'data-testid="history"' not in page and "nav-sessions" not in page


def test_an_admin_sees_who_did_what_on_a_mailing_and_a_client(
    admin: httpx.Client, operator: httpx.Client, records: dict[str, int]
) -> None:
    mailing_id, client_id = records["mailing_id"], records["client_id"]
    token = csrf_of(operator.get(f"/admin/mailings/{mailing_id}").text)
    assert operator.post(f"/admin/mailings/{mailing_id}/pause", data={"csrf_token": token})
    edit = operator.post(
        f"/admin/clients/{client_id}/edit",
        data={"csrf_token": token, "phone": _phone(), "tag": "edited", "time_zone": "UTC"},
    )
    assert edit.status_code == 303, edit.text[:300]

    page = admin.get(f"/admin/mailings/{mailing_id}").text
    history = _history(page)
    assert history[0][:2] == (OPERATOR_EMAIL, "mailing.paused")
    assert history[-1][:2] == ("key-1", "mailing.scheduled")
    page = admin.get(f"/admin/clients/{client_id}/edit").text
    history = _history(page)
    assert history[0][:2] == (OPERATOR_EMAIL, "client.updated")
    assert history[-1][:2] == ("key-1", "client.created")
    assert 'data-testid="role">admin<' in page and "nav-sessions" in page
    assert ADMIN_EMAIL not in [who for who, *_ in history]


_ROW = re.compile(r'data-testid="history-actor">([^ <]+) .*?</td>\s*<td><code>([^<]+)</code>', re.S)


def _history(page: str) -> list[tuple[str, str]]:
    assert 'data-testid="history"' in page
    return [(m.group(1), m.group(2)) for m in _ROW.finditer(page)]
