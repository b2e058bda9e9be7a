"""A backend's name is one word: its ``type:`` in the settings, its name in decisions, audit
and metrics, and what the policy dispatches on."""

from __future__ import annotations

import typing

import pytest

from callout.backends.ldap import LdapBackend
from callout.backends.oidc import OidcBackend
from callout.backends.static import StaticBackend
from callout.backends.tokens import TokenBackend
from callout.policy.snapshot import STATIC_BACKEND, TOKEN_BACKEND
from callout.settings.backends import (
    LdapBackendSettings,
    OidcBackendSettings,
    StaticBackendSettings,
    TokenBackendSettings,
    ldap,
    oidc,
    static,
    tokens,
)


@pytest.mark.parametrize(
    ("options", "backend", "name"),
    [
        (StaticBackendSettings, StaticBackend, static.NAME),
        (LdapBackendSettings, LdapBackend, ldap.NAME),
        (TokenBackendSettings, TokenBackend, tokens.NAME),
        (OidcBackendSettings, OidcBackend, oidc.NAME),
    ],
)
def test_the_settings_type_is_the_backends_name(options: type, backend: type, name: str) -> None:
    """`type: token` configures the backend whose decisions say `backend=token`."""
    assert typing.get_args(options.model_fields["type"].annotation) == (name,)
    assert backend.name == name


def test_the_policy_dispatches_on_the_same_words() -> None:
    assert (STATIC_BACKEND, TOKEN_BACKEND) == (static.NAME, tokens.NAME)
