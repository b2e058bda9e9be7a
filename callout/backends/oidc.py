"""The OIDC backend: JWT bearer tokens (OIDC access/ID tokens, Kubernetes service-account
tokens) verified against each trusted issuer's JWKS with PyJWT.

Order of checks: shape and size; the unverified ``iss`` only to pick the issuer's settings
(an unknown one is `untrusted_issuer`); the header's ``alg`` against that issuer's
allowlist, which never holds ``none`` or ``HS*`` (so a public key can never be used as an
HMAC secret); the key by ``kid``; then PyJWT verifies the signature with the key bound to
that one algorithm, and ``exp``/``nbf``/``iat`` (with leeway), ``iss``, ``aud`` and the
required claims; then the issuer's ``require`` rules (`callout.backends.claimpaths`: a
failing rule is `claim_not_allowed`, before any group is looked at). Claims become the
identity: a principal claim, groups from claim paths (prefixed per issuer), attributes for
templates. The token's ``exp`` caps the user JWT. Keys come from a file, a URL, or the
issuer's discovery document (`callout.backends.discovery`).

Two drivers, one set of checks: ``authenticate`` awaits the key (it may be fetched);
``authenticate_now`` (the inline path, `callout.backends.base`) uses only keys already loaded
and fresh, and answers `LATER` otherwise, so a key fetch keeps its task and its lane.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt
from jwt.exceptions import ExpiredSignatureError, InvalidTokenError

from callout.backends.base import LATER, NowResult
from callout.backends.claimpaths import claim, failed_rule, strings
from callout.backends.jwks import JwksSource, SigningKey
from callout.credentials.presented import bearer_jwt
from callout.decision import BackendName, Decision, Identity, Lane, Reason
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.settings import OidcBackendSettings, OidcIssuerSettings

MAX_TOKEN_BYTES = 16 * 1024
_FORBIDDEN_ALGORITHMS = ("none", "HS")  # also enforced by the settings' allowlist type


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    settings: OidcIssuerSettings
    keys: JwksSource


@dataclass(frozen=True, slots=True)
class _Presented:
    """A token that passed the checks before its key: what verifying it needs."""

    token: str
    issuer: TrustedIssuer
    algorithm: str
    kid: str | None


class OidcBackend:
    """Verifies JWT bearer tokens from the configured issuers."""

    name: str = BackendName.OIDC

    def __init__(self, issuers: Sequence[TrustedIssuer], executor: ThreadPoolExecutor) -> None:
        for issuer in issuers:
            if any(a.startswith(_FORBIDDEN_ALGORITHMS) for a in issuer.settings.algorithms):
                raise ValueError(f"{issuer.settings.issuer}: none and HS* are never allowed")
        self.issuers = {issuer.settings.issuer: issuer for issuer in issuers}
        self._executor = executor

    @classmethod
    def from_settings(cls, settings: OidcBackendSettings) -> OidcBackend:
        executor = ThreadPoolExecutor(1, thread_name_prefix="jwks")
        issuers = [
            TrustedIssuer(
                item,
                JwksSource(
                    executor=executor,
                    url=item.jwks_url,
                    file=item.jwks_file,
                    discovery_issuer=item.issuer if item.discovery else None,
                    ca_file=item.ca_file,
                    ttl=settings.jwks_ttl,
                    min_interval=settings.jwks_refresh_min_interval,
                    timeout=settings.fetch_timeout,
                ),
            )
            for item in settings.issuers
        ]
        return cls(issuers, executor)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def lane(self, request: AuthRequest, policy: PolicySnapshot) -> Lane | None:
        """Cheap while every issuer's keys are loaded; a token that may need a key fetch first
        is expensive. None where `authenticate` passes."""
        if not bearer_jwt(request.connect):
            return None
        loaded = all(issuer.keys.key_count > 0 for issuer in self.issuers.values())
        return Lane.CHEAP if loaded else Lane.EXPENSIVE

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        """Identity for a valid token of a trusted issuer; a deny for any other JWT."""
        checked = self._checked(request)
        if not isinstance(checked, _Presented):
            return checked
        key = await checked.issuer.keys.find(checked.kid)
        return self._verified(checked, key)

    def authenticate_now(self, request: AuthRequest, policy: PolicySnapshot) -> NowResult:
        """`authenticate` without awaiting: the same checks and answers when the token's key
        is among the keys already loaded and still fresh; `LATER` when finding it may need a
        fetch (no keys yet, keys past their ttl, a kid we do not know)."""
        checked = self._checked(request)
        if not isinstance(checked, _Presented):
            return checked
        key = checked.issuer.keys.loaded(checked.kid)
        if key is None:
            return LATER
        return self._verified(checked, key)

    def _checked(self, request: AuthRequest) -> _Presented | Decision | None:
        """Everything before the key: shape, size, issuer, alg and kid (no I/O)."""
        token = bearer_jwt(request.connect)
        if not token:
            return None
        if len(token) > MAX_TOKEN_BYTES:
            return self._invalid("token too large")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except InvalidTokenError:
            return self._invalid("malformed")
        named = unverified.get("iss")
        issuer = self.issuers.get(named) if isinstance(named, str) else None
        if issuer is None:
            return Decision.deny(Reason.UNTRUSTED_ISSUER, backend=self.name)
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or algorithm not in issuer.settings.algorithms:
            return self._invalid("algorithm not allowed")
        if kid is not None and not isinstance(kid, str):
            return self._invalid("kid is not a string")
        return _Presented(token, issuer, algorithm, kid)

    def _verified(self, presented: _Presented, key: SigningKey | None) -> Identity | Decision:
        """The signature with ``key``, the registered claims, then the identity (no I/O)."""
        verifier = key.verifier(presented.algorithm) if key is not None else None
        if verifier is None:
            return self._invalid("unknown kid" if key is None else "key does not fit alg")
        config = presented.issuer.settings
        try:
            claims = jwt.decode(
                presented.token,
                verifier,
                algorithms=[presented.algorithm],
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway,
                options={
                    "require": list(config.required_claims),
                    "enforce_minimum_key_length": True,
                },
            )
        except ExpiredSignatureError:
            return Decision.deny(Reason.CREDENTIAL_EXPIRED, backend=self.name)
        except InvalidTokenError as error:
            return self._invalid(type(error).__name__)
        return self._identity(config, claims)

    def _identity(self, config: OidcIssuerSettings, claims: dict[str, Any]) -> Identity | Decision:
        principal = claim(claims, config.principal_claim)
        expires = claims.get("exp")
        if not isinstance(principal, str) or not principal:
            return self._invalid(f"no {config.principal_claim} claim")
        if not isinstance(expires, int | float):
            return self._invalid("no numeric exp")
        failed = failed_rule(claims, config.require)
        if failed is not None:
            detail = f"require {failed}"  # the path only: claim values may be personal data
            return Decision.deny(
                Reason.CLAIM_NOT_ALLOWED, backend=self.name, principal=principal, detail=detail
            )
        groups = [
            config.group_prefix + group
            for path in config.group_claims
            for group in strings(claim(claims, path))
        ]
        attributes = {}
        for name, path in config.attribute_claims.items():
            value = claim(claims, path)
            if isinstance(value, str | int) and not isinstance(value, bool):
                attributes[name] = str(value)
        return Identity(
            principal=principal,
            backend=self.name,
            groups=tuple(dict.fromkeys(groups)),
            attributes=MappingProxyType(attributes),
            expires_at=int(expires),
        )

    def _invalid(self, detail: str) -> Decision:
        return Decision.deny(Reason.INVALID_TOKEN, backend=self.name, detail=detail)
