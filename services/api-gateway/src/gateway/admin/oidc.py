"""OpenID Connect login with any standard provider (Auth0 included): authorization code with
PKCE (S256), ID token validation against the provider's keys, RP-initiated logout.

authlib builds the requests (authorization URL, token request and client authentication) and
validates the ID token's claims; joserfc (authlib's JOSE layer) checks its signature with the
provider's JWKS. HTTP goes through the admin's own ``httpx.AsyncClient`` (authlib's httpx
integration is deprecated in favour of httpx2, which this project does not use).

Nothing here logs or returns a token or a secret: errors carry short reasons fit for a log line
and a page.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import structlog
from authlib.common.urls import add_params_to_uri  # type: ignore[import-untyped]
from authlib.oauth2.auth import ClientAuth  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    prepare_grant_uri,
    prepare_token_request,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from gateway.admin.config import AdminSettings
from gateway.admin.roles import Role, role_of
from gateway.admin.sessions import LoginState, User

__all__ = [
    "AccessDenied",
    "LoginFailed",
    "OidcClient",
    "ProviderMetadata",
    "check_access",
]

log = structlog.get_logger(__name__)

METADATA_TTL_S: Final = 3600.0
CLOCK_LEEWAY_S: Final = 60
# Only asymmetric signatures: a token signed with the client secret (HS256) or not at all
# ("none") is refused whatever the provider advertises.
_ASYMMETRIC: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
     "Ed25519"}
)  # fmt: skip


class LoginFailed(Exception):
    """The login could not be completed; ``str()`` is a short reason without secrets."""


class AccessDenied(Exception):
    """The provider vouched for the user, but the access rules keep them out."""

    def __init__(self, user: User, reason: str) -> None:
        super().__init__(reason)
        self.user = user


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    algorithms: tuple[str, ...]
    token_auth_method: str
    iss_parameter: bool

    @classmethod
    def parse(cls, data: Any) -> ProviderMetadata:
        if not isinstance(data, Mapping):
            raise LoginFailed("provider metadata is not a JSON object")
        try:
            algorithms = [
                a
                for a in data.get("id_token_signing_alg_values_supported", ["RS256"])
                if a in _ASYMMETRIC
            ]
            methods = data.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
            return cls(
                issuer=str(data["issuer"]),
                authorization_endpoint=str(data["authorization_endpoint"]),
                token_endpoint=str(data["token_endpoint"]),
                jwks_uri=str(data["jwks_uri"]),
                userinfo_endpoint=data.get("userinfo_endpoint"),
                end_session_endpoint=data.get("end_session_endpoint"),
                algorithms=tuple(algorithms or ["RS256"]),
                token_auth_method=(
                    "client_secret_basic"
                    if "client_secret_basic" in methods
                    else "client_secret_post"
                ),
                iss_parameter=bool(data.get("authorization_response_iss_parameter_supported")),
            )
        except (KeyError, TypeError) as exc:
            raise LoginFailed(f"provider metadata lacks {exc}") from None


def _same_issuer(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def check_access(settings: AdminSettings, claims: Mapping[str, Any]) -> tuple[User, Role]:
    """The user the claims describe and the role the access rule grants them (the highest of
    ``gateway.admin.roles.role_of``); ``AccessDenied`` when it grants none."""
    user = User.from_claims(claims)
    role = role_of(claims, settings.role_rule())
    if role is None:
        raise AccessDenied(user, "not an allowed email or role")
    return user, role


class OidcClient:
    """One provider and one client registration at it."""

    def __init__(self, settings: AdminSettings, http: httpx.AsyncClient) -> None:
        assert settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret
        self._settings = settings
        self._issuer = settings.oidc_issuer
        self._client_id = settings.oidc_client_id
        self._secret = settings.oidc_client_secret
        self._http = http
        self._metadata: ProviderMetadata | None = None
        self._fetched_at = 0.0
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()

    @property
    def client_id(self) -> str:
        return self._client_id

    async def metadata(self) -> ProviderMetadata:
        """The provider's discovery document, fetched once an hour."""
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._fetched_at > METADATA_TTL_S:
                url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
                metadata = ProviderMetadata.parse(await self._get_json(url, "discovery"))
                if not _same_issuer(metadata.issuer, self._issuer):
                    raise LoginFailed("the provider's metadata names another issuer")
                self._metadata, self._fetched_at, self._keys = metadata, time.monotonic(), None
            return self._metadata

    async def start(self, redirect_uri: str, next_path: str) -> tuple[str, LoginState]:
        """The provider's authorization URL and what the callback must find again."""
        metadata = await self.metadata()
        login = LoginState(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
            next=next_path,
        )
        url = prepare_grant_uri(
            metadata.authorization_endpoint,
            client_id=self._client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=self._settings.oidc_scopes,
            state=login.state,
            nonce=login.nonce,
            code_challenge=create_s256_code_challenge(login.verifier),
            code_challenge_method="S256",
        )
        return str(url), login

    async def finish(
        self, params: Mapping[str, str], login: LoginState, redirect_uri: str
    ) -> tuple[dict[str, Any], str]:
        """Check the callback's parameters, redeem the code, validate the ID token: its
        claims (merged with /userinfo when it lacks the email) and the raw ID token."""
        metadata = await self.metadata()
        if "error" in params:
            # Shown and logged: only the characters of an OAuth error code survive.
            error = "".join(
                c for c in params["error"][:40] if c.isascii() and (c.isalnum() or c == "_")
            )
            raise LoginFailed(f"the provider answered {error or 'an error'}")
        state = params.get("state", "")
        if not hmac.compare_digest(state.encode(), login.state.encode()):
            raise LoginFailed("state does not match this browser's login")
        iss = params.get("iss")
        if (iss is not None or metadata.iss_parameter) and iss != metadata.issuer:
            raise LoginFailed("the answer comes from another issuer")
        code = params.get("code")
        if not code:
            raise LoginFailed("no authorization code")
        tokens = await self._redeem(metadata, code, login.verifier, redirect_uri)
        id_token = tokens.get("id_token")
        access_token = tokens.get("access_token")
        if not isinstance(id_token, str):
            raise LoginFailed("the provider returned no ID token")
        claims = await self.validate_id_token(
            id_token, login.nonce, access_token if isinstance(access_token, str) else None
        )
        if "email" not in claims and metadata.userinfo_endpoint and isinstance(access_token, str):
            claims = await self._with_userinfo(metadata.userinfo_endpoint, access_token, claims)
        return claims, id_token

    async def validate_id_token(
        self, id_token: str, nonce: str, access_token: str | None = None
    ) -> dict[str, Any]:
        """The claims of a valid ID token for this client: signed with one of the provider's
        keys, from its issuer, for this client (``aud``, and ``azp`` when there are several
        audiences), not expired, carrying ``nonce``; else ``LoginFailed``."""
        metadata = await self.metadata()
        registry = JWSRegistry(algorithms=list(metadata.algorithms), strict_check_header=False)
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(), registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys since we fetched them
                token = jwt.decode(id_token, await self._key_set(force=True), registry=registry)
            options = {
                "iss": {"essential": True, "value": metadata.issuer},
                "aud": {"essential": True, "value": self._client_id},
                "exp": {"essential": True},
                "nonce": {"essential": True, "value": nonce},
            }
            params = {"nonce": nonce, "client_id": self._client_id}
            if access_token:
                params["access_token"] = access_token
            claims = CodeIDToken(token.claims, token.header, options, params)
            claims.validate(leeway=CLOCK_LEEWAY_S)
        except JoseError as exc:
            raise LoginFailed(f"invalid ID token ({exc.description or exc.error})") from None
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self._client_id:
            raise LoginFailed("invalid ID token (azp)")
        return dict(claims)

    async def logout_url(self, id_token: str | None, return_to: str) -> str | None:
        """Where to send the browser so that the provider ends its session too: the
        advertised end_session_endpoint, Auth0's /v2/logout, or ``None`` (local logout only)."""
        try:
            metadata = await self.metadata()
        except LoginFailed:
            return None
        if metadata.end_session_endpoint:
            params = {"post_logout_redirect_uri": return_to, "client_id": self._client_id}
            if id_token:
                params["id_token_hint"] = id_token
            return str(add_params_to_uri(metadata.end_session_endpoint, params))
        if self._settings.uses_auth0_logout:
            url = metadata.issuer.rstrip("/") + "/v2/logout"
            return str(
                add_params_to_uri(url, {"client_id": self._client_id, "returnTo": return_to})
            )
        return None

    async def _redeem(
        self, metadata: ProviderMetadata, code: str, verifier: str, redirect_uri: str
    ) -> Mapping[str, Any]:
        body = prepare_token_request(
            "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=verifier
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        auth = ClientAuth(
            self._client_id, self._secret.get_secret_value(), metadata.token_auth_method
        )
        url, headers, body = auth.prepare("POST", metadata.token_endpoint, headers, body)
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise LoginFailed(f"token endpoint unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            error = _error_code(response)
            log.warning("admin_token_request_refused", status=response.status_code, error=error)
            raise LoginFailed(f"the provider refused the code ({error})")
        data = _json(response)
        if not isinstance(data, Mapping):
            raise LoginFailed("token response is not a JSON object")
        return data

    async def _with_userinfo(
        self, endpoint: str, access_token: str, claims: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            response = await self._http.get(
                endpoint, headers={"Authorization": f"Bearer {access_token}"}
            )
        except httpx.HTTPError:
            return claims
        info = _json(response) if response.status_code == 200 else None
        # A userinfo answer about someone else is ignored (OIDC Core 5.3.2).
        if not isinstance(info, Mapping) or info.get("sub") != claims.get("sub"):
            return claims
        return {**info, **claims}

    async def _key_set(self, *, force: bool = False) -> KeySet:
        if self._keys is None or force:
            metadata = await self.metadata()
            data = await self._get_json(metadata.jwks_uri, "jwks")
            try:
                self._keys = KeySet.import_key_set(data)
            except (JoseError, ValueError, TypeError, KeyError):
                raise LoginFailed("the provider's JWKS is not a key set") from None
        return self._keys

    async def _get_json(self, url: str, what: str) -> Any:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            log.warning("admin_oidc_unreachable", what=what, error=type(exc).__name__)
            raise LoginFailed(f"the provider is unreachable ({what})") from None
        if response.status_code != 200:
            log.warning("admin_oidc_refused", what=what, status=response.status_code)
            raise LoginFailed(f"the provider answered {response.status_code} ({what})")
        return _json(response)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_code(response: httpx.Response) -> str:
    """The OAuth error code of a refusal (never its description, which may echo input)."""
    data = _json(response)
    error = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(error, str) and error.replace("_", "").isalnum():
        return error[:40]
    return f"HTTP {response.status_code}"
