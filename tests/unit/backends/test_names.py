"""A backend's name is one word: its ``type:`` in the settings, its name in decisions, audit
and metrics, and what the policy dispatches on."""

from __future__ import annotations

import typing

import pytest

from callout.backends.certificates import CertificateBackend
from callout.backends.ldap import LdapBackend
from callout.backends.oidc import OidcBackend
from callout.backends.static import StaticBackend
from callout.backends.tokens import TokenBackend
from callout.decision import BackendName
from callout.settings.backends import (
    BackendSettings,
    CertificateBackendSettings,
    LdapBackendSettings,
    OidcBackendSettings,
    StaticBackendSettings,
    TokenBackendSettings,
    certificates,
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
        (CertificateBackendSettings, CertificateBackend, certificates.NAME),
    ],
)
def test_the_settings_type_is_the_backends_name(options: type, backend: type, name: str) -> None:
    """`type: token` configures the backend whose decisions say `backend=token`."""
    assert typing.get_args(options.model_fields["type"].annotation) == (name,)
    assert backend.name == name


def test_every_backend_name_is_one_settings_type() -> None:
    """The vocabulary's `BackendName` (what the policy dispatches on) and the settings'
    ``type:`` values are the same set of words."""
    union = typing.get_args(BackendSettings)[0]
    types = [
        typing.get_args(model.model_fields["type"].annotation) for model in typing.get_args(union)
    ]
    assert sorted(name for (name,) in types) == sorted(BackendName)
