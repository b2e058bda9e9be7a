"""OIDC discovery over real HTTPS: the stand-in IdP serves its metadata and keys with a server
certificate from a CA made in the test; the issuer's ``ca_file`` is what makes it trusted.
A certificate from any other CA (or the system's trust store alone) loads no keys, refuses
the logins of that issuer, and never replaces keys already loaded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from callout.backends.oidc import OidcBackend
from callout.decision import Decision, Identity, Reason
from callout.errors import BackendUnavailableError
from callout.policy import PolicySnapshot
from callout.service.app import App
from callout.settings import OidcBackendSettings
from tests import counts
from tests.certificates import Authority
from tests.integration.backends.idp import AUDIENCE, JwksServer, SigningKey, claims, mint
from tests.integration.conftest import Environment, environment
from tests.integration.rawclient import raw_connect
from tests.unit.policy.helpers import request, snapshot

pytestmark = pytest.mark.integration
Open = Callable[..., OidcBackend]

_POLICY = """\
version: 1
roles:
  workload:
    publish: {allow: ["work.>", "$SYS.REQ.USER.INFO"]}
    subscribe: {allow: ["_INBOX.>"]}
groups:
  "idp:platform": {roles: [workload], account: APP}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Our CA (its bundle file and a server certificate for 127.0.0.1) and another CA's."""
    directory = tmp_path_factory.mktemp("pki")
    ours, theirs = Authority.root("IdP Root"), Authority.root("Someone Else")
    (directory / "ours.pem").write_text(ours.pem)
    (directory / "theirs.pem").write_text(theirs.pem)
    return {
        "ca_file": directory / "ours.pem",
        "other_ca_file": directory / "theirs.pem",
        "context": ours.server().server_context(directory, "ours-server"),
        "other_context": theirs.server().server_context(directory, "theirs-server"),
    }


@pytest.fixture
def idp(idp_keys: tuple[SigningKey, SigningKey], pki: dict[str, Any]) -> Iterator[JwksServer]:
    server = JwksServer(*idp_keys, tls=pki["context"]).start()
    try:
        yield server
    finally:
        server.stop()


def issuer(idp: JwksServer, ca_file: Path | None) -> dict[str, Any]:
    """The issuer's settings: its URL and (maybe) a CA bundle, nothing else about keys."""
    found: dict[str, Any] = {
        "issuer": idp.issuer,
        "audience": [AUDIENCE],
        "require": {"sub": "svc-1"},
        "group_prefix": "idp:",
    }
    if ca_file is not None:
        found["ca_file"] = str(ca_file)
    return found


@pytest.fixture
async def discovered(idp: JwksServer) -> AsyncIterator[Open]:
    opened: list[OidcBackend] = []

    def open_(ca_file: Path | None, **backend: Any) -> OidcBackend:
        settings = OidcBackendSettings.model_validate(
            {
                "type": "oidc",
                "jwks_refresh_min_interval": "200ms",
                **backend,
                "issuers": [issuer(idp, ca_file)],
            }
        )
        opened.append(OidcBackend.from_settings(settings))
        return opened[-1]

    yield open_
    for backend in opened:
        backend.close()


@pytest.fixture
def policy(tmp_path: Path) -> PolicySnapshot:
    return snapshot(tmp_path, "roles: {app: {publish: {allow: ['app.>']}}}\n")


async def login(backend: OidcBackend, idp: JwksServer, policy: PolicySnapshot, key: int = 0) -> Any:
    token = mint(idp.keys[key], claims("svc-1", issuer=idp.issuer))
    return await backend.authenticate(request(token=token), policy)


async def test_keys_are_discovered_over_https_with_the_issuers_ca_file(
    idp: JwksServer, discovered: Open, policy: PolicySnapshot, pki: dict[str, Any]
) -> None:
    """The issuer URL is https, its certificate is from our CA: metadata and keys load once."""
    assert idp.issuer.startswith("https://127.0.0.1:")
    backend = discovered(pki["ca_file"])
    for _ in range(3):
        assert isinstance(await login(backend, idp, policy), Identity)
    assert (idp.discovery_requests, idp.requests) == (1, 1)


@pytest.mark.parametrize("trust", ["other_ca_file", None], ids=["wrong-ca-file", "no-ca-file"])
async def test_an_issuer_certificate_from_another_ca_loads_no_keys(
    idp: JwksServer,
    discovered: Open,
    policy: PolicySnapshot,
    pki: dict[str, Any],
    trust: str | None,
) -> None:
    """The TLS handshake fails before any HTTP request: no metadata, no keys, logins of this
    issuer fail closed (the service answers backend_unavailable)."""
    backend = discovered(pki[trust] if trust else None)
    with pytest.raises(BackendUnavailableError):
        await login(backend, idp, policy)
    assert (idp.discovery_requests, idp.requests) == (0, 0)
    assert backend.issuers[idp.issuer].keys.failures == 1


async def test_a_certificate_from_another_ca_later_keeps_the_last_good_keys(
    idp: JwksServer, discovered: Open, policy: PolicySnapshot, pki: dict[str, Any]
) -> None:
    """A renewal with the wrong CA does not drop the loaded keys; a key published meanwhile
    is not trusted until the issuer's certificate is right again."""
    backend = discovered(pki["ca_file"], jwks_ttl="200ms")
    assert isinstance(await login(backend, idp, policy), Identity)
    idp.tls = pki["other_context"]
    rotated = SigningKey.ec("ec-2")
    idp.keys.append(rotated)
    await asyncio.sleep(0.25)
    assert isinstance(await login(backend, idp, policy), Identity)  # refresh failed, keys kept
    keys = backend.issuers[idp.issuer].keys
    assert keys.failures >= 1
    assert keys.key_count == 2  # the two loaded over the right CA
    refused = await login(backend, idp, policy, key=2)
    assert isinstance(refused, Decision)
    assert (refused.reason, refused.detail) == (Reason.INVALID_TOKEN, "unknown kid")
    idp.tls = pki["context"]
    await asyncio.sleep(0.25)
    assert isinstance(await login(backend, idp, policy, key=2), Identity)


@pytest.fixture
def nats_env(tmp_path: Path) -> Iterator[Environment]:
    """A config-mode nats-server (accounts APP, OPS) calling out to the service."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "policy.yaml").write_text(_POLICY)
    env = environment("accounts")
    env.start(tmp_path / "env", policy_dir=policies)
    try:
        yield env
    finally:
        env.stop()


@pytest.mark.parametrize("trusted", [True, False], ids=["our-ca", "wrong-ca"])
async def test_a_workload_logs_in_through_nats_server_only_when_the_issuer_is_trusted(
    nats_env: Environment, idp: JwksServer, pki: dict[str, Any], trusted: bool
) -> None:
    """End to end: a bearer token of the https issuer opens a connection in APP when the
    issuer's certificate is from its ca_file; with another CA the server refuses the client."""
    ca_file = pki["ca_file"] if trusted else pki["other_ca_file"]
    backends = [{"type": "oidc", "issuers": [issuer(idp, ca_file)]}]
    app = App(nats_env.settings(backends=backends, policy={"directory": nats_env.policy_dir}))
    await app.start()
    try:
        token = mint(idp.keys[0], claims("svc-1", issuer=idp.issuer, groups=["platform"]))
        if trusted:
            nc = await nats_env.connect(token=token)
            try:
                reply = await nc.request("$SYS.REQ.USER.INFO", b"", timeout=2)
                assert json.loads(reply.data)["data"]["account"] == nats_env.account("APP")
            finally:
                await nc.close()
        else:
            _, line = await raw_connect(
                nats_env.server.port, nats_env.raw_fields({"auth_token": token})
            )
            assert "Authorization Violation" in line
            assert dict(counts.decisions(app.metrics))[Reason.BACKEND_UNAVAILABLE] >= 1
    finally:
        await app.stop()
