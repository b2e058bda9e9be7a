"""Options of the OIDC/JWT backend (`callout.backends.oidc`, `callout.backends.jwks`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field, model_validator

from callout.decision import BackendName
from callout.settings.backends.common import TEMPLATE_NAME, check_outbound, is_loopback
from callout.settings.base import Section
from callout.settings.claimrules import RequireRules, pin_problem
from callout.settings.durations import Seconds

NAME: Final = BackendName.OIDC


def url_allowed(url: str) -> bool:
    """Whether the service may fetch keys from ``url``: https, or http to loopback only."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rpartition("@")[2].rsplit(":", 1)[0].strip("[]")
    return bool(host) and (scheme == "https" or (scheme == "http" and is_loopback(host)))


JwsAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


class OidcIssuerSettings(Section):
    """One trusted token issuer: where its keys are and what its tokens must say."""

    issuer: str = Field(min_length=1, description="the exact iss claim")
    audience: list[str] = Field(min_length=1, description="aud must hold one of these")
    jwks_url: str | None = None
    jwks_file: Path | None = None
    ca_file: Path | None = Field(default=None, description="CA bundle for jwks_url / discovery")
    algorithms: tuple[JwsAlgorithm, ...] = Field(("RS256", "ES256"), min_length=1)
    required_claims: tuple[str, ...] = ("exp", "iat", "iss", "aud", "sub")
    leeway: Seconds = Field(default=30.0, description="clock skew allowed, at most 60s")
    principal_claim: str = "sub"
    group_claims: tuple[str, ...] = Field(
        ("groups",), description="claim paths (a.b.c) whose values are groups"
    )
    group_prefix: str = Field(default="", description="prepended to every group of this issuer")
    attribute_claims: dict[Annotated[str, Field(pattern=TEMPLATE_NAME)], str] = Field(
        default_factory=dict, description="{{user.attr.NAME}} -> claim path"
    )
    # claim rules (callout.settings.claimrules) and the pin every issuer needs
    require: RequireRules = Field(
        default_factory=dict, description="claim path -> value, [any of], or {glob: ...}"
    )
    allow_any_subject: str | None = Field(
        default=None, min_length=1, description="why no require rule pins a workload claim"
    )

    @property
    def discovery(self) -> bool:
        """Keys found through the issuer's /.well-known/openid-configuration."""
        return self.jwks_url is None and self.jwks_file is None

    @model_validator(mode="after")
    def _coherent(self) -> OidcIssuerSettings:
        if self.jwks_url is not None and self.jwks_file is not None:
            raise ValueError("set at most one of jwks_url and jwks_file (neither: discovery)")
        if self.discovery and not url_allowed(self.issuer):
            raise ValueError(
                "without jwks_url or jwks_file the keys are discovered from the issuer URL,"
                " which must be https:// (http:// only to localhost)"
            )
        if self.jwks_url is not None and not url_allowed(self.jwks_url):
            raise ValueError("jwks_url must be https:// (http:// only to localhost)")
        if problem := pin_problem(self.issuer, self.require, self.allow_any_subject):
            raise ValueError(problem)
        if "exp" not in self.required_claims:
            raise ValueError("required_claims must contain exp: tokens must expire")
        if self.leeway > 60:  # noqa: PLR2004 - docs/operations.md#tokens
            raise ValueError("leeway must be at most 60s")
        return self


class OidcBackendSettings(Section):
    """JWT bearer tokens (OIDC, Kubernetes service accounts) checked against a JWKS."""

    type: Literal["oidc"]
    accepts: tuple[Literal["jwt"], ...] = Field(("jwt",), min_length=1)
    issuers: list[OidcIssuerSettings] = Field(min_length=1)
    jwks_ttl: Seconds = Field(default=600.0, description="how long fetched keys are used")
    jwks_refresh_min_interval: Seconds = Field(
        default=30.0, description="least time between fetches for an unknown kid"
    )
    fetch_timeout: Seconds = 1.0

    @model_validator(mode="after")
    def _coherent(self) -> OidcBackendSettings:
        names = [issuer.issuer for issuer in self.issuers]
        if len(set(names)) != len(names):
            raise ValueError("each issuer may be listed once")
        check_outbound(self.fetch_timeout, "fetch_timeout")
        return self
