"""Settings of the certificate backend (``type: cert``): trust anchors, revocation lists,
bounds, and the rules that map a client certificate to an identity and groups.

Self-contained (its own base model) so that it can move as one block.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final, Literal

from pydantic import Field, field_validator, model_validator

from callout.credentials.certrules import (
    PRINCIPAL_GROUP,
    SPIFFE_FIELD,
    CertificateField,
    is_trust_domain,
)
from callout.decision import BackendName
from callout.settings.base import Section

_MAX_PATTERN = 500
_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_]+$")  # a named group is usable as {{user.attr.NAME}}

NAME: Final = BackendName.CERT


class CertificateRule(Section):
    """The values of one certificate field that fully match ``pattern`` (default: all)."""

    field: CertificateField = Field(
        description="san.dns, san.uri, san.email, spiffe.id, subject.CN, ..."
    )
    pattern: str | None = Field(
        default=None,
        max_length=_MAX_PATTERN,
        description="a regular expression the whole value must match; for spiffe.id, the path",
    )
    trust_domain: str | None = Field(
        default=None, description="spiffe.id only, and required there: the trust domain pinned"
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ValueError(f"pattern is not a regular expression: {error}") from None
        for group in compiled.groupindex:
            if not _ATTRIBUTE.match(group):
                raise ValueError(f"group name {group!r}: use letters, digits and _")
        return pattern

    @model_validator(mode="after")
    def _spiffe_pin(self) -> CertificateRule:
        if self.field == SPIFFE_FIELD:
            if self.trust_domain is None or not is_trust_domain(self.trust_domain):
                raise ValueError(
                    "spiffe.id needs trust_domain: the one trust domain accepted "
                    "(lower-case letters, digits, '.', '-', '_'; e.g. prod.example.org)"
                )
        elif self.trust_domain is not None:
            raise ValueError("trust_domain applies to field: spiffe.id only")
        return self


class CertificateGroupRule(CertificateRule):
    """Each matching value is a group: ``group`` if set, else ``group_prefix`` + the value."""

    group: str | None = Field(default=None, min_length=1, description="a fixed group name")

    @field_validator("pattern")
    @classmethod
    def _no_principal(cls, pattern: str | None) -> str | None:
        if pattern is not None and PRINCIPAL_GROUP in re.compile(pattern).groupindex:
            raise ValueError("a group rule has no principal: drop the (?P<principal>...) group")
        return pattern


class CertificateBackendSettings(Section):
    """TLS client certificates (``client_tls`` of the request), verified against our CAs."""

    type: Literal["cert"]
    accepts: tuple[Literal["certificate"], ...] = Field(("certificate",), min_length=1)
    ca_files: list[Path] = Field(
        min_length=1, description="PEM bundles of the CAs client chains must end at"
    )
    crl_files: list[Path] = Field(
        default_factory=list,
        description="CRLs (PEM or DER); when set, the leaf's CA must have a current one",
    )
    max_chain_length: int = Field(
        default=4, ge=1, le=10, description="certificates as forwarded: leaf to root"
    )
    max_certificate_bytes: int = Field(
        default=16384, ge=1024, le=65536, description="PEM size of one certificate"
    )
    identity: list[CertificateRule] = Field(
        min_length=1, description="tried in order; the first with a matching value names the user"
    )
    groups: list[CertificateGroupRule] = Field(
        default_factory=list, description="every match is a group for the policy's groups:"
    )
    group_prefix: str = Field(default="", description="prepended to groups taken from values")
