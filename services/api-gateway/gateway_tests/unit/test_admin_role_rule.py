"""The admin's role rule: claims and settings to a role, the highest of every rule that
matches, and what each role may do."""

from __future__ import annotations

from itertools import product
from typing import Any

import pytest

from gateway.admin.config import AdminSettings
from gateway.admin.roles import (
    Permission,
    Role,
    RoleRule,
    SessionKind,
    may,
    permissions_of,
    role_of,
    session_role,
)


def claims(**values: Any) -> dict[str, Any]:
    return {"sub": "u1", "email": "ops@example.com", "email_verified": True, **values}


def rule(**values: Any) -> RoleRule:
    return AdminSettings(_env_file=None, admin_dev_login=True, **values).role_rule()


def test_each_role_may_what_the_one_below_may_and_more() -> None:
    assert permissions_of(Role.VIEWER) == {Permission.VIEW}
    assert permissions_of(Role.OPERATOR) == {Permission.VIEW, Permission.CHANGE}
    assert permissions_of(Role.ADMIN) == set(Permission)
    for lower, higher in product(Role, Role):
        if lower <= higher:
            assert permissions_of(lower) <= permissions_of(higher)


def test_the_audit_and_the_sessions_are_for_admins_only() -> None:
    for permission in (Permission.AUDIT, Permission.SESSIONS):
        assert not may(Role.OPERATOR, permission)
        assert may(Role.ADMIN, permission)


def test_emails_map_to_their_roles_when_verified() -> None:
    r = rule(
        admin_allowed_emails="boss@example.com",
        admin_operator_emails="OPS@example.com",
        admin_viewer_emails="look@example.com",
    )
    assert role_of(claims(email="boss@example.com"), r) is Role.ADMIN
    assert role_of(claims(), r) is Role.OPERATOR  # the list is case-insensitive
    assert role_of(claims(email="look@example.com"), r) is Role.VIEWER
    assert role_of(claims(email="intruder@example.com"), r) is None
    assert role_of(claims(email_verified=False), r) is None
    assert role_of(claims(email_verified="true"), r) is None  # only a real true


def test_role_names_in_the_claim_map_to_their_roles() -> None:
    r = rule(
        admin_role_claim="https://sms/roles",
        admin_admin_role="sms-admin",
        admin_operator_role="sms-operator",
        admin_viewer_role="sms-viewer",
    )
    assert role_of(claims(**{"https://sms/roles": ["sms-viewer"]}), r) is Role.VIEWER
    assert role_of(claims(**{"https://sms/roles": "other sms-operator"}), r) is Role.OPERATOR
    assert role_of(claims(**{"https://sms/roles": ["sms-viewer", "sms-admin"]}), r) is Role.ADMIN
    assert role_of(claims(**{"https://sms/roles": ["viewer"]}), r) is None
    assert role_of(claims(**{"https://sms/roles": {"sms-admin": True}}), r) is None
    assert role_of(claims(), r) is None


def test_the_required_role_of_old_still_grants_admin() -> None:
    r = rule(admin_role_claim="roles", admin_required_role="ops", admin_viewer_role="see")
    assert role_of(claims(roles=["ops"]), r) is Role.ADMIN
    assert role_of(claims(roles=["see"]), r) is Role.VIEWER
    both = rule(admin_role_claim="roles", admin_required_role="a", admin_admin_role="b")
    assert role_of(claims(roles=["a"]), both) is role_of(claims(roles=["b"]), both) is Role.ADMIN


def test_the_highest_of_the_matching_rules_wins() -> None:
    r = rule(
        admin_viewer_emails="ops@example.com", admin_role_claim="roles", admin_operator_role="op"
    )
    assert role_of(claims(roles=["op"]), r) is Role.OPERATOR
    assert role_of(claims(), r) is Role.VIEWER


def test_without_any_rule_every_user_is_an_admin_only_when_said_so() -> None:
    assert role_of(claims(), rule(admin_allow_any_user=True)) is Role.ADMIN
    assert role_of(claims(), rule()) is None
    ruled = rule(admin_allow_any_user=True, admin_viewer_emails="ops@example.com")
    assert role_of(claims(), ruled) is Role.VIEWER  # a rule, once set, is the rule
    assert role_of(claims(email="x@example.com"), ruled) is None


def test_a_dev_session_is_an_admin_only_while_the_dev_login_is_on() -> None:
    dev = {"sub": "dev-local"}
    assert session_role(SessionKind.DEV, dev, rule()) is Role.ADMIN
    off = RoleRule(emails={}, dev_login=False)
    assert session_role(SessionKind.DEV, dev, off) is None
    # An OIDC session never benefits from the dev login.
    assert session_role(SessionKind.OIDC, dev, rule()) is None


@pytest.mark.parametrize(
    "values",
    [
        {"admin_role_claim": "roles"},
        {"admin_viewer_role": "v"},
        {"admin_required_role": "a"},
    ],
)
def test_a_claim_goes_with_role_names(values: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="ADMIN_ROLE_CLAIM"):
        rule(**values)
