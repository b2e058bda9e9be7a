"""Builders for the certificate backend's unit tests (certificates: tests/certificates.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from callout.backends.certificates import CertificateBackend
from callout.credentials.certificates import TrustAnchors
from callout.decision import Decision
from callout.policy import PolicySnapshot
from callout.protocol.claims import AuthRequest, ClientTLS
from callout.settings.backends.certificates import CertificateBackendSettings
from tests.certificates import NOW, Authority, Client
from tests.unit.policy.helpers import request

AT = NOW.timestamp()
SPIFFE = "spiffe://prod.example.org/ns/shop/sa/checkout"


def settings(**changes: Any) -> CertificateBackendSettings:
    return CertificateBackendSettings.model_validate(
        {
            "type": "cert",
            "ca_files": ["unused.pem"],
            "identity": [
                {
                    "field": "spiffe.id",
                    "trust_domain": "prod.example.org",
                    "pattern": "/ns/(?P<ns>[a-z-]+)/sa/(?P<principal>[a-z-]+)",
                },
                {
                    "field": "san.dns",
                    "pattern": r"(?P<principal>[a-z0-9-]+)\.devices\.example\.org",
                },
                {"field": "san.email"},
            ],
            "groups": [
                {"field": "subject.OU"},
                {"field": "spiffe.id", "trust_domain": "prod.example.org", "group": "workloads"},
            ],
            "group_prefix": "ou:",
            **changes,
        }
    )


def backend(root: Authority, crls: tuple[Any, ...] = (), **changes: Any) -> CertificateBackend:
    config = settings(**changes)
    anchors = TrustAnchors([root.certificate], crls, max_depth=config.max_chain_length)
    return CertificateBackend(config, anchors, clock=lambda: AT)


def with_tls(chain: tuple[str, ...], *, verified: bool = True) -> AuthRequest:
    """A request as nats-server sends it: the chain it verified, or the peer certificates."""
    if verified:
        tls = ClientTLS("1.3", "TLS_AES_128_GCM_SHA256", verified_chains=(chain,))
    else:
        tls = ClientTLS("1.3", "TLS_AES_128_GCM_SHA256", certs=chain)
    return dataclasses.replace(request(), tls=tls)


async def login(backend: CertificateBackend, client: Client, *chain: Authority) -> Any:
    pems = (client.pem, *(authority.pem for authority in chain))
    return await backend.authenticate(with_tls(pems), snapshot_placeholder())


def snapshot_placeholder() -> PolicySnapshot:
    """The backend does not read the policy: an empty one."""
    return PolicySnapshot("d", "s", {}, {}, {})


def denied(result: object) -> Decision:
    assert isinstance(result, Decision), result
    assert not result.allowed
    return result
