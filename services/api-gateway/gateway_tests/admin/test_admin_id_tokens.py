"""ID tokens from the real provider: ours is accepted; one for another client (audience), one
for another login (nonce), one altered, or one signed with a key that is not the provider's
is refused, and a code issued to another client does not log anyone in."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from gateway.admin import AdminSettings
from gateway.admin.oidc import LoginFailed, OidcClient

from .admin_support import (
    ADMIN_EMAIL,
    CLIENT_ID,
    OTHER_CLIENT_ID,
    SESSION_SECRET,
    Gateway,
    Provider,
)


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def id_token_for(
    provider: Provider, client_id: str, secret: str, redirect_uri: str, nonce: str
) -> str:
    """Log in at the provider as ADMIN_EMAIL for ``client_id`` and redeem the code."""
    verifier = secrets.token_urlsafe(48)
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": "openid email profile",
        "state": "s",
        "nonce": nonce,
        "code_challenge": _challenge(verifier),
        "code_challenge_method": "S256",
    }
    with httpx.Client(base_url=provider.issuer, follow_redirects=False, timeout=10) as http:
        resp = http.get("/auth", params=params)
        for _ in range(12):
            location = resp.headers.get("location", "")
            if location.startswith(redirect_uri):
                code = parse_qs(urlsplit(location).query)["code"][0]
                break
            if resp.is_redirect:
                resp = http.get(httpx.URL(str(resp.url)).join(location))
            elif 'value="login"' in resp.text:
                data = {"prompt": "login", "login": ADMIN_EMAIL, "password": "x"}
                resp = http.post(_action(resp.text), data=data)
            else:
                resp = http.post(_action(resp.text), data={"prompt": "consent"})
        else:
            raise AssertionError("no code")
        token = http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            auth=(client_id, secret),
        )
    assert token.status_code == 200, token.text
    return str(token.json()["id_token"])


def _action(html: str) -> str:
    start = html.index('action="') + len('action="')
    return html[start : html.index('"', start)]


@pytest.fixture
async def oidc(provider: Provider) -> AsyncIterator[OidcClient]:
    settings = AdminSettings(
        _env_file=None,
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=provider.client_secret,
        admin_session_secret=SESSION_SECRET,
        admin_allow_any_user=True,
        admin_base_url="http://127.0.0.1:8000",
    )
    async with httpx.AsyncClient(timeout=10) as http:
        yield OidcClient(settings, http)


def our_token(provider: Provider, nonce: str) -> str:
    return id_token_for(
        provider, CLIENT_ID, provider.client_secret, provider.redirect_uris[0], nonce
    )


async def test_an_id_token_for_this_client_is_accepted(
    provider: Provider, oidc: OidcClient
) -> None:
    claims = await oidc.validate_id_token(our_token(provider, "n-1"), "n-1")
    assert claims["sub"] == ADMIN_EMAIL and claims["aud"] == CLIENT_ID
    assert claims["email"] == ADMIN_EMAIL and "sms-admin" in claims["roles"]


async def test_an_id_token_for_another_audience_is_refused(
    provider: Provider, oidc: OidcClient
) -> None:
    token = id_token_for(
        provider, OTHER_CLIENT_ID, provider.other_secret, provider.other_redirect_uri, "n-2"
    )
    with pytest.raises(LoginFailed, match="aud"):
        await oidc.validate_id_token(token, "n-2")


async def test_an_id_token_of_another_login_is_refused(
    provider: Provider, oidc: OidcClient
) -> None:
    with pytest.raises(LoginFailed, match="nonce"):
        await oidc.validate_id_token(our_token(provider, "n-3"), "another-nonce")


async def test_an_altered_id_token_is_refused(provider: Provider, oidc: OidcClient) -> None:
    header, payload, signature = our_token(provider, "n-4").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "intruder@example.com"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(LoginFailed):
        await oidc.validate_id_token(f"{header}.{forged}.{signature}", "n-4")


async def test_a_token_signed_with_another_key_or_none_is_refused(
    provider: Provider, oidc: OidcClient
) -> None:
    now = int(time.time())
    claims = {"iss": provider.issuer, "sub": ADMIN_EMAIL, "aud": CLIENT_ID, "iat": now,
              "exp": now + 300, "nonce": "n-5", "email": ADMIN_EMAIL}  # fmt: skip
    key = RSAKey.generate_key(2048, parameters={"kid": "attacker"})
    signed = jwt.encode({"alg": "RS256", "kid": "attacker"}, claims, key)
    with pytest.raises(LoginFailed):
        await oidc.validate_id_token(signed, "n-5")
    unsigned = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
        for part in ({"alg": "none"}, claims)
    )
    with pytest.raises(LoginFailed):
        await oidc.validate_id_token(unsigned + ".", "n-5")


def test_a_code_issued_to_another_client_logs_nobody_in(
    provider: Provider, gateway: Gateway
) -> None:
    with httpx.Client(base_url=gateway.url, follow_redirects=False, timeout=10) as http:
        start = http.get("/admin/auth/login", params={"next": "/admin"})
        assert start.status_code == 303
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        # A code the provider issued to another application (with its own PKCE verifier).
        verifier = secrets.token_urlsafe(48)
        with httpx.Client(base_url=provider.issuer, follow_redirects=True, timeout=10) as op:
            resp = op.get(
                "/auth",
                params={
                    "client_id": OTHER_CLIENT_ID, "response_type": "code", "scope": "openid",
                    "redirect_uri": provider.other_redirect_uri, "state": state, "nonce": "n",
                    "code_challenge": _challenge(verifier), "code_challenge_method": "S256",
                },
            )  # fmt: skip
            resp = op.post(_action(resp.text), data={"prompt": "login", "login": ADMIN_EMAIL})
            resp = op.post(_action(resp.text), data={"prompt": "consent"})
            code = parse_qs(urlsplit(str(resp.url)).query)["code"][0]
        callback = http.get(
            "/admin/auth/callback", params={"code": code, "state": state, "iss": provider.issuer}
        )
        assert callback.status_code == 400
        assert "Login failed" in callback.text
        assert "sms_admin_session" not in callback.headers.get("set-cookie", "")
        assert http.get("/admin").status_code == 303  # still logged out
