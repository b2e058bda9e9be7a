"""Micro-benchmarks of a certificate login (pytest-benchmark): what the cheap lane spends on
one chain. Never timed assertions; each checks its result."""

from __future__ import annotations

from typing import Any

import pytest

from callout.backends.certificates import CertificateBackend
from callout.credentials.certificates import TrustAnchors
from callout.decision import Identity
from callout.settings.backends.certificates import CertificateBackendSettings
from tests.certificates import NOW, Authority, name

pytestmark = pytest.mark.benchmark(group="certificates", min_rounds=20, max_time=0.3, warmup=False)

AT = NOW.timestamp()
SETTINGS = CertificateBackendSettings.model_validate(
    {
        "type": "cert",
        "ca_files": ["unused.pem"],
        "identity": [
            {"field": "san.dns", "pattern": r"(?P<principal>[^.]+)\.devices\.example\.org"}
        ],
        "groups": [{"field": "subject.OU"}],
    }
)


@pytest.mark.parametrize("crl", [False, True], ids=["no-crl", "crl"])
def test_deciding_a_device_chain(benchmark: Any, crl: bool) -> None:
    """Leaf + intermediate (ECDSA P-256) to a root: parse, verify, CRL, map."""
    root = Authority.root()
    devices = root.intermediate()
    device = devices.issue(name(CN="t-1", OU="sensors"), dns=["t-1.devices.example.org"])
    crls = (devices.crl([devices.issue().certificate]),) if crl else ()
    backend = CertificateBackend(SETTINGS, TrustAnchors([root.certificate], crls))
    chain = (device.pem, devices.pem)
    identity = benchmark(lambda: backend.decide(chain, AT))
    assert isinstance(identity, Identity)
    assert identity.groups == ("sensors",)
