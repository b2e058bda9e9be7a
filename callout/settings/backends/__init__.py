"""The options of each credential backend, one module per backend named as the backend is
(``type: static | ldap | token | oidc | cert``, the same words the backends use as their names)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from callout.settings.backends.certificates import CertificateBackendSettings
from callout.settings.backends.ldap import LdapBackendSettings, LdapGroupSettings
from callout.settings.backends.oidc import JwsAlgorithm, OidcBackendSettings, OidcIssuerSettings
from callout.settings.backends.static import StaticBackendSettings
from callout.settings.backends.tokens import TokenBackendSettings

__all__ = [
    "BackendSettings",
    "CertificateBackendSettings",
    "JwsAlgorithm",
    "LdapBackendSettings",
    "LdapGroupSettings",
    "OidcBackendSettings",
    "OidcIssuerSettings",
    "StaticBackendSettings",
    "TokenBackendSettings",
    "default_backends",
]

BackendSettings = Annotated[
    StaticBackendSettings
    | LdapBackendSettings
    | TokenBackendSettings
    | OidcBackendSettings
    | CertificateBackendSettings,
    Field(discriminator="type"),
]


def default_backends() -> list[BackendSettings]:
    return [StaticBackendSettings(type="static")]
