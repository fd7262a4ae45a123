"""The admin's plain rules: access by email or role, where a login may return to, the CSRF and
origin check, signed session cookies, form fields to command bodies, and the SVG charts."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.requests import Request
from starlette.responses import Response

from gateway.admin import AdminSettings
from gateway.admin.charts import (
    Bucket,
    Part,
    buckets,
    donut,
    fill_gaps,
    nice_max,
    progress_bar,
    stacked_bars,
)
from gateway.admin.forms import mailing_body, mailing_changes, mailing_values
from gateway.admin.oidc import AccessDenied, check_access
from gateway.admin.roles import Role
from gateway.admin.sessions import (
    SESSION_COOKIE,
    CookieJar,
    CsrfError,
    check_csrf,
    new_session,
    safe_next,
)
from gateway.mailings.repository import MailingRow
from sms_events.reporter_contract import MinuteSends, OverallStats

MOSCOW = ZoneInfo("Europe/Moscow")


def admin_settings(**values: Any) -> AdminSettings:
    return AdminSettings(_env_file=None, admin_dev_login=True, **values)


def claims(**values: Any) -> dict[str, Any]:
    return {"sub": "u1", "email": "ops@example.com", "email_verified": True, **values}


def test_without_rules_every_provider_user_is_let_in_as_an_admin_when_said_so() -> None:
    user, role = check_access(admin_settings(admin_allow_any_user=True), claims())
    assert user.email == "ops@example.com" and role is Role.ADMIN
    with pytest.raises(AccessDenied):
        check_access(admin_settings(), claims())


def test_a_listed_verified_email_is_let_in_and_others_are_not() -> None:
    s = admin_settings(admin_allowed_emails="OPS@example.com")
    assert check_access(s, claims())[0].sub == "u1"
    with pytest.raises(AccessDenied):
        check_access(s, claims(email="intruder@example.com"))
    with pytest.raises(AccessDenied):
        check_access(s, claims(email_verified=False))


def test_the_required_role_is_looked_up_in_the_role_claim() -> None:
    s = admin_settings(admin_role_claim="https://sms/roles", admin_required_role="admin")
    assert check_access(s, claims(**{"https://sms/roles": ["viewer", "admin"]}))
    assert check_access(s, claims(**{"https://sms/roles": "viewer admin"}))
    with pytest.raises(AccessDenied):
        check_access(s, claims(**{"https://sms/roles": ["viewer"]}))
    with pytest.raises(AccessDenied):
        check_access(s, claims())


def test_either_rule_is_enough_when_both_are_set() -> None:
    s = admin_settings(
        admin_allowed_emails="boss@example.com", admin_role_claim="roles", admin_required_role="a"
    )
    assert check_access(s, claims(roles=["a"]))
    assert check_access(s, claims(email="boss@example.com"))
    with pytest.raises(AccessDenied):
        check_access(s, claims(roles=["b"]))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/admin/mailings/3?p=2", "/admin/mailings/3?p=2"),
        ("/admin", "/admin"),
        (None, "/admin"),
        ("https://evil.example/admin", "/admin"),
        ("//evil.example/admin", "/admin"),
        ("/administrator", "/admin"),
        ("/admin\\..\\x", "/admin"),
        ("/api/v1/clients/", "/admin"),
    ],
)
def test_a_login_returns_only_inside_the_admin(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def request(headers: dict[str, str], cookie: str | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if cookie:
        raw.append((b"cookie", f"{SESSION_COOKIE}={cookie}".encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "server": ("admin.test", 80),
        "path": "/admin/x",
        "query_string": b"",
        "headers": raw,
    }
    return Request(scope)


def test_a_post_needs_this_origin_and_the_session_token() -> None:
    session = new_session()
    origin = "http://admin.test"
    check_csrf(request({"Origin": origin}), session, session.csrf, origin)
    check_csrf(request({"Referer": f"{origin}/admin/clients"}), session, session.csrf, origin)
    for (
        headers,
        token,
    ) in [
        ({"Origin": origin}, None),
        ({"Origin": origin}, "forged"),
        ({"Origin": "http://evil.test"}, session.csrf),
        ({"Origin": "null"}, session.csrf),
        ({"Referer": "http://evil.test/admin"}, session.csrf),
        ({}, session.csrf),
    ]:
        with pytest.raises(CsrfError):
            check_csrf(request(headers), session, token, origin)
    with pytest.raises(CsrfError):
        check_csrf(request({"Origin": origin}), None, session.csrf, origin)


def cookie_from(response: Response) -> str:
    header = response.headers["set-cookie"]
    return header.split(";", 1)[0].split("=", 1)[1]


def test_a_session_cookie_is_signed_and_expires() -> None:
    jar = CookieJar(secrets.token_urlsafe(40), max_age_s=60, secure=True)
    response = Response()
    session = new_session(sid="a-random-session-id")
    jar.set_session(response, session)
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "secure" in header
    assert "path=/admin" in header and "max-age=60" in header
    value = cookie_from(response)
    assert jar.session(request({}, value)) == session
    tampered = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    assert jar.session(request({}, tampered)) is None
    other = CookieJar(secrets.token_urlsafe(40), max_age_s=60, secure=True)
    assert other.session(request({}, value)) is None
    expired = CookieJar(secrets.token_urlsafe(40), max_age_s=60, secure=True)
    expired._sessions = jar._sessions  # same key, but the cookie is older than allowed
    expired.max_age_s = -1
    assert expired.session(request({}, value)) is None


def row(**values: Any) -> MailingRow:
    now = datetime(2030, 5, 1, 6, 30, 15, tzinfo=UTC)
    base: dict[str, Any] = {
        "id": 1, "text": "Hi", "datetime_start": now, "datetime_end": now + timedelta(days=1),
        "send_interval_time_start": time(9), "send_interval_time_end": time(21),
        "client_filter": "vip", "paused": False, "cancelled_at": None, "version": 1,
        "created_at": now, "updated_at": now,
    }  # fmt: skip
    return MailingRow(**(base | values))


def test_form_dates_are_read_in_the_admin_zone() -> None:
    body, errors = mailing_body(
        {
            "text": " Sale ",
            "datetime_start": "2030-05-01T09:30",
            "datetime_end": "nonsense",
            "send_interval_time_start": "",
            "client_filter": "",
        },
        MOSCOW,
    )
    assert body["datetime_start"] == "2030-05-01T09:30:00+03:00"
    assert body["text"] == "Sale"
    assert body["send_interval_time_start"] is None and body["client_filter"] is None
    assert "datetime_end" in errors


def test_an_edit_sends_only_what_changed() -> None:
    current = row()
    values = mailing_values(current, MOSCOW)
    assert values["datetime_start"] == "2030-05-01T09:30"  # shown to the minute
    changed, errors = mailing_changes(
        {**values, "datetime_end": "2030-05-03T10:00"}, current, MOSCOW
    )
    assert errors == {}
    assert changed == {"datetime_end": "2030-05-03T10:00:00+03:00"}


def test_gaps_between_buckets_are_filled_with_zeros() -> None:
    t = datetime(2030, 1, 1, tzinfo=UTC)
    minute = timedelta(minutes=1)
    out = fill_gaps([Bucket(t, 1, 0), Bucket(t + 3 * minute, 2, 1)], minute)
    assert [(b.delivered, b.failed) for b in out] == [(1, 0), (0, 0), (0, 0), (2, 1)]
    assert len(fill_gaps([Bucket(t, 1, 0), Bucket(t + 500 * minute, 1, 0)], minute)) == 120


def test_axis_bounds_are_round() -> None:
    assert [nice_max(v) for v in (0, 1, 3, 7, 12, 101, 4999)] == [1, 1, 5, 10, 20, 200, 5000]


def test_charts_are_svg_without_inline_styles_and_with_escaped_text() -> None:
    t = datetime(2030, 1, 1, tzinfo=UTC)
    bars = stacked_bars(
        [Bucket(t, 5, 2)], label="<script>x</script>", time_format="%H:%M", zone=MOSCOW
    )
    assert bars.startswith("<svg") and "style=" not in bars
    assert "<script>" not in bars and "&lt;script&gt;" in bars
    assert 'class="c-delivered"' in bars and 'class="c-failed"' in bars
    assert "03:00: 5 delivered, 2 failed" in bars  # the time is shown in the admin's zone
    ring = donut([Part("delivered", 3, "c-delivered"), Part("failed", 1, "c-failed")], label="m")
    assert ">4</text>" in ring
    bar = progress_bar([Part("delivered", 1, "c-delivered")], 4, label="1 of 4")
    assert 'width="25"' in bar


def test_the_reporters_sends_become_bars_oldest_first() -> None:
    hours = OverallStats.model_validate(
        {
            "clients": 3,
            "mailings": {"running": 1},
            "messages": {"SC": 1, "DL": 2, "ND": 0, "CA": 0},
            "delivery_rate": 1.0,
            "sends_per_hour": [
                {"hour": "2030-01-01T11:00:00Z", "delivered": 1, "failed": 1},
                {"hour": "2030-01-01T10:00:00Z", "delivered": 2, "failed": 0},
            ],
            "segments_per_day": [],
        }
    ).sends_per_hour
    t = datetime(2030, 1, 1, 10, tzinfo=UTC)
    assert buckets(hours) == [Bucket(t, 2, 0), Bucket(t + timedelta(hours=1), 1, 1)]
    minute = MinuteSends(minute=t, delivered=3, failed=0)
    assert buckets([minute]) == [Bucket(t, 3, 0)]


async def test_install_mounts_the_admin_once() -> None:
    import httpx

    from gateway import Settings, create_app
    from gateway.admin import install

    settings = Settings(_env_file=None, admin_dev_login=True)  # type: ignore[call-arg]
    app = create_app(settings)  # the gateway installs its admin itself
    routes = len(app.routes)
    install(app, settings)
    assert len(app.routes) == routes
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
        page = await client.get("/admin/login")
        assert page.status_code == 200 and "dev-login" in page.text
        assert (await client.get("/admin/static/admin.css")).status_code == 200
    assert not any(path.startswith("/admin") for path in app.openapi()["paths"])
