"""The `backends:` and `decision_cache:` settings: safe defaults, precise errors."""

from __future__ import annotations

from typing import Any

import pytest

from callout.errors import ConfigError
from callout.settings import (
    LdapBackendSettings,
    OidcBackendSettings,
    Settings,
    StaticBackendSettings,
    load_settings,
)

LDAP = {
    "type": "ldap",
    "urls": ["ldaps://ldap.example.org"],
    "bind_dn": "cn=svc,dc=example,dc=org",
    "bind_password_file": "/run/secrets/ldap",
    "user_base": "ou=people,dc=example,dc=org",
    "groups": {"base": "ou=groups,dc=example,dc=org"},
}
ISSUER = {
    "issuer": "https://idp",
    "audience": ["nats"],
    "jwks_url": "https://idp/jwks",
    "require": {"sub": "svc-1"},
}


def settings(**values: Any) -> Settings:
    return load_settings(None, keys={"issuer_seed_file": "/x"}, accounts=["APP"], **values)


def error(**values: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        settings(**values)
    return str(caught.value)


def test_without_backends_the_chain_is_static_with_a_one_minute_cache() -> None:
    """Existing settings files and `callout dev` keep their behaviour."""
    configured = settings()
    assert configured.backends == [StaticBackendSettings(type="static")]
    assert configured.decision_cache.ttl == 60.0


def test_backends_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Containers configure the chain like every other setting: CALLOUT_BACKENDS as JSON."""
    monkeypatch.setenv("CALLOUT_BACKENDS", '[{"type": "static", "accepts": ["nkey"]}]')
    (static,) = settings().backends
    assert isinstance(static, StaticBackendSettings)
    assert static.accepts == ("nkey",)


def test_ldap_defaults_keep_every_call_well_under_the_auth_timeout() -> None:
    """The server waits 2 s; a directory answer after that is useless."""
    (ldap,) = settings(backends=[LDAP]).backends
    assert isinstance(ldap, LdapBackendSettings)
    assert ldap.deadline < 2.0
    assert ldap.timeout < ldap.deadline
    assert ldap.connect_timeout < ldap.deadline


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"urls": ["ldap://ldap.example.org"]}, "sends passwords in clear"),
        ({"urls": ["ldaps://h"], "start_tls": True}, "already TLS"),
        ({"urls": ["http://h"]}, "starts with ldap://"),
        ({"user_filter": "(uid=alice)"}, "must contain {user}"),
        ({"groups": {"mode": "member"}}, "groups.base is required"),
        ({"deadline": "10s"}, "deadline must be"),
        ({"attributes": ["mail.address"]}, "String should match pattern"),
    ],
    ids=["plaintext", "tls-twice", "scheme", "filter", "group-base", "deadline", "attr-name"],
)
def test_ldap_settings_that_cannot_be_safe_are_refused(
    change: dict[str, Any], message: str
) -> None:
    """Clear-text passwords, literal filters and slow deadlines are configuration errors."""
    assert message in error(backends=[{**LDAP, **change}])


def test_plaintext_ldap_needs_an_explicit_opt_in() -> None:
    """Tests and loopback sidecars may use ldap://, but only when the operator says so."""
    plain = {**LDAP, "urls": ["ldap://127.0.0.1"], "allow_plaintext": True}
    (ldap,) = settings(backends=[plain]).backends
    assert isinstance(ldap, LdapBackendSettings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"algorithms": ["none"]}, "Input should be 'RS256'"),
        ({"algorithms": ["HS256"]}, "Input should be 'RS256'"),
        ({"jwks_url": "http://idp.example.org/jwks"}, "must be https://"),
        ({"jwks_file": "/etc/jwks.json"}, "at most one of jwks_url and jwks_file"),
        ({"leeway": "5m"}, "at most 60s"),
        ({"required_claims": ["sub"]}, "must contain exp"),
    ],
    ids=["none", "hs256", "http", "two-sources", "leeway", "no-exp"],
)
def test_oidc_settings_that_cannot_be_safe_are_refused(
    change: dict[str, Any], message: str
) -> None:
    """alg none and HMAC algorithms can never be allowed; keys come over TLS."""
    assert message in error(backends=[{"type": "oidc", "issuers": [{**ISSUER, **change}]}])


def test_a_local_jwks_may_be_plain_http() -> None:
    """An IdP sidecar (or a test) on loopback needs no TLS."""
    issuer = {**ISSUER, "jwks_url": "http://127.0.0.1:8080/jwks"}
    (oidc,) = settings(backends=[{"type": "oidc", "issuers": [issuer]}]).backends
    assert isinstance(oidc, OidcBackendSettings)


@pytest.mark.parametrize(
    ("backends", "message"),
    [
        ([{"type": "static"}, {"type": "static"}], "listed twice"),
        ([{"type": "token", "pepper_file": "/p", "accepts": ["password"]}], "Input should be"),
        ([{"type": "kerberos"}], "does not match any of the expected tags"),
        ([], "at least 1 item"),
    ],
    ids=["twice", "kind", "type", "empty"],
)
def test_the_chain_itself_is_validated(backends: list[dict[str, Any]], message: str) -> None:
    """Each backend type once, each taking only credential kinds it understands."""
    assert message in error(backends=backends)
