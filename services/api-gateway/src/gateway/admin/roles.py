"""Who may do what in the admin: the rule from a login's claims and the settings to a role, and
what each role may do. Pure: no I/O, no settings object; the session layer feeds it the claims
stored at login and the rule built from the current settings, on every request, so a changed
rule (an email taken off a list, a role renamed) applies to open sessions at the next restart.

The roles are ordered (viewer < operator < admin) and each grants everything the one below it
does; a user matched by several rules gets the highest of them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any, Final

__all__ = [
    "Permission",
    "Role",
    "RoleRule",
    "SessionKind",
    "may",
    "permissions_of",
    "role_of",
    "session_role",
]


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class SessionKind(Enum):
    OIDC = "oidc"
    DEV = "dev"


class Permission(Enum):
    """What a route needs. ``VIEW`` every page; ``CHANGE`` every command (clients, mailings,
    opt-outs, imports); ``AUDIT`` the history of who did what; ``SESSIONS`` other users'
    sessions (listing them, logging a user out everywhere)."""

    VIEW = "view"
    CHANGE = "change"
    AUDIT = "audit"
    SESSIONS = "sessions"


# The least role each permission needs. The audit is admin-only, as its API is (`admin` scope):
# it names every operator and their request ids.
_LEAST: Final[Mapping[Permission, Role]] = {
    Permission.VIEW: Role.VIEWER,
    Permission.CHANGE: Role.OPERATOR,
    Permission.AUDIT: Role.ADMIN,
    Permission.SESSIONS: Role.ADMIN,
}


def may(role: Role, permission: Permission) -> bool:
    return role >= _LEAST[permission]


def permissions_of(role: Role) -> frozenset[Permission]:
    return frozenset(p for p in Permission if may(role, p))


@dataclass(frozen=True, slots=True)
class RoleRule:
    """The access rule, from the settings: emails per role (verified ones only), and role names
    per role in the claim ``claim``. ``open_to_all`` (nothing else configured) makes every user
    the provider authenticates an admin, as ``ADMIN_ALLOW_ANY_USER=true`` always meant;
    ``dev_login`` whether the development login (an admin) is on."""

    emails: Mapping[Role, Collection[str]]
    claim: str | None = None
    claim_roles: Mapping[Role, Collection[str]] | None = None
    open_to_all: bool = False
    dev_login: bool = False


def _claim_values(claims: Mapping[str, Any], name: str) -> list[str]:
    value = claims.get(name)
    if isinstance(value, str):
        return value.split()  # a space-separated list, as OAuth's scope claim
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def role_of(claims: Mapping[str, Any], rule: RoleRule) -> Role | None:
    """The highest role ``rule`` grants the user ``claims`` describe; ``None``: keep out."""
    if rule.open_to_all:
        return Role.ADMIN
    granted: list[Role] = []
    email = claims.get("email")
    if isinstance(email, str) and claims.get("email_verified") is True:
        granted += [r for r, listed in rule.emails.items() if email.lower() in listed]
    if rule.claim and rule.claim_roles:
        held = set(_claim_values(claims, rule.claim))
        granted += [r for r, names in rule.claim_roles.items() if held & set(names)]
    return max(granted, default=None)


def session_role(kind: SessionKind, claims: Mapping[str, Any], rule: RoleRule) -> Role | None:
    """The role of an open session now: a development login's is admin while the development
    login stays on, an OpenID Connect login's is what the rule grants its claims."""
    if kind is SessionKind.DEV:
        return Role.ADMIN if rule.dev_login else None
    return role_of(claims, rule)
