"""TLS client certificates through a real nats-server with ``tls { verify: true }``, in config
mode and in operator mode (default sentinel): nats-py clients log in with nothing but their
certificate and land where the policy maps them; what the server accepted but we do not
trust, or what a CRL revokes, is refused with a reason. And with ``verify: false`` (the
server's only other mode for clients) no certificate reaches the service at all."""

from __future__ import annotations

import datetime
import json
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from nats.errors import Error as NatsError

from callout.decision import Reason
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.operator_mode import OperatorModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.service.app import App
from tests import counts
from tests.certificates import DAY, Authority, Client, name
from tests.integration.conftest import connect

pytestmark = pytest.mark.integration

WORKLOAD = "spiffe://prod.example.org/ns/shop/sa/checkout"
_POLICY = """\
version: 1
defaults: {account: APP}
roles:
  device:
    publish: {allow: ["telemetry.{{user.name}}.>", "$SYS.REQ.USER.INFO"]}
    subscribe: {allow: ["_INBOX.>"]}
  workload:
    publish: {allow: ["svc.{{user.attr.ns}}.{{user.name}}.>", "$SYS.REQ.USER.INFO"]}
    subscribe: {allow: ["_INBOX.>"]}
groups:
  "ou:sensors": {roles: [device]}
  workloads: {roles: [workload], account: OPS}
"""
_CERT_BACKEND: dict[str, Any] = {
    "type": "cert",
    "identity": [
        {
            "field": "spiffe.id",
            "trust_domain": "prod.example.org",
            "pattern": "/ns/(?P<ns>[a-z-]+)/sa/(?P<principal>[a-z-]+)",
        },
        {"field": "san.dns", "pattern": r"(?P<principal>[^.]+)\.devices\.example\.org"},
    ],
    "groups": [
        {"field": "subject.OU"},
        {"field": "spiffe.id", "trust_domain": "prod.example.org", "group": "workloads"},
    ],
    "group_prefix": "ou:",
}


def _today() -> dict[str, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return {"not_before": now - DAY, "not_after": now + DAY}


@dataclass
class Pki:
    """Our CA (with a devices intermediate), a CA only the server trusts, and files."""

    directory: Path
    root: Authority
    devices: Authority
    foreign: Authority
    revoked: Client

    @classmethod
    def make(cls, directory: Path) -> Pki:
        root = Authority.root()
        devices = root.intermediate()
        revoked = devices.issue(
            name(CN="r", OU="sensors"), dns=["r.devices.example.org"], **_today()
        )
        pki = cls(directory, root, devices, Authority.root("A CA the server trusts"), revoked)
        (directory / "ours.pem").write_text(root.pem)
        (directory / "server-trusts.pem").write_text(root.pem + pki.foreign.pem)
        (directory / "devices.crl").write_bytes(
            devices.crl([revoked.certificate]).public_bytes(Encoding.PEM)
        )
        server = root.server()
        server.write(directory, "server", devices)
        root.issue(name(CN="callout"), **_today()).write(directory, "service")
        return pki

    def tls_block(self, *, verify: bool) -> str:
        d = self.directory
        return (
            f'tls {{\n  cert_file: "{d / "server.pem"}"\n  key_file: "{d / "server.key"}"\n'
            f'  ca_file: "{d / "server-trusts.pem"}"\n  verify: {str(verify).lower()}\n'
            "  timeout: 2\n}"
        )

    def context(self, client: Client | None, *chain: Authority) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.directory / "ours.pem"))
        if client is not None:
            cert, key = client.write(self.directory, f"client-{id(client)}", *chain)
            context.load_cert_chain(str(cert), str(key))
        return context


@dataclass
class TlsServer:
    pki: Pki
    setup: ConfigModeSetup | OperatorModeSetup
    server: NatsServer

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.setup.port}"

    def account(self, name: str) -> str:
        """How `$SYS.REQ.USER.INFO` names account ``name``: operator mode by public key."""
        if isinstance(self.setup, OperatorModeSetup):
            return self.setup.public_key(name)
        return name

    def login(self) -> dict[str, Any]:
        """The service's own login (``nats.*`` settings) to this server, over TLS."""
        d = self.pki.directory
        tls = {
            "tls_ca_file": d / "ours.pem",
            "tls_cert_file": d / "service.pem",
            "tls_key_file": d / "service.key",
        }
        if isinstance(self.setup, OperatorModeSetup):
            return {"servers": [self.url], "creds_file": self.setup.service_creds_file, **tls}
        user = {"user": self.setup.auth_user, "password_file": self.setup.password_file}
        return {"servers": [self.url], **user, **tls}


def _tls_server(directory: Path, pki: Pki, mode: str, *, verify: bool) -> Iterator[TlsServer]:
    setup: ConfigModeSetup | OperatorModeSetup
    if mode == "operator":
        # no sentinel creds for the clients: a certificate is all they have
        setup = OperatorModeSetup(
            directory, free_port(), target_accounts=("APP", "OPS"), default_sentinel=True
        ).write()
        with setup.config_file.open("a", encoding="utf-8") as config:
            config.write(pki.tls_block(verify=verify) + "\n")
    else:
        setup = ConfigModeSetup(
            directory,
            free_port(),
            target_accounts=("APP", "OPS"),
            extra_config=pki.tls_block(verify=verify),
        ).write()
    with NatsServer(setup.config_file, setup.port) as server:
        yield TlsServer(pki, setup, server)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module", params=["config", "operator"])
def verifying(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[TlsServer]:
    """nats-server requiring and verifying client certificates (against both CAs)."""
    directory = tmp_path_factory.mktemp(f"verify-{request.param}")
    yield from _tls_server(directory, pki, request.param, verify=True)


@pytest.fixture(scope="module")
def not_verifying(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    yield from _tls_server(tmp_path_factory.mktemp("noverify"), pki, "config", verify=False)


Start = Callable[..., Any]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    apps: list[App] = []

    async def start_(target: TlsServer, **backend: Any) -> App:
        policies = tmp_path / "policies"
        policies.mkdir(exist_ok=True)
        (policies / "policy.yaml").write_text(_POLICY)
        ours = str(target.pki.directory / "ours.pem")
        cert = {"ca_files": [ours], **_CERT_BACKEND, **backend}
        settings = target.setup.settings(
            policies, nats=target.login(), backends=[{"type": "static"}, cert]
        )
        app = App(settings)
        await app.start()
        apps.append(app)
        return app

    yield start_
    for app in apps:
        await app.stop()


async def user_info(target: TlsServer, context: ssl.SSLContext) -> dict[str, Any]:
    nc = await connect(target.url, tls=context)
    try:
        reply = await nc.request("$SYS.REQ.USER.INFO", b"", timeout=2)
    finally:
        await nc.close()
    data: dict[str, Any] = json.loads(reply.data)["data"]
    return data


async def refused(target: TlsServer, context: ssl.SSLContext) -> None:
    try:
        nc = await connect(target.url, tls=context)
    except (NatsError, OSError):
        return
    await nc.close()
    pytest.fail("the login was accepted")


def decisions(app: App) -> dict[Reason, int]:
    return dict(counts.decisions(app.metrics))


async def test_a_device_logs_in_with_its_certificate_alone(
    verifying: TlsServer, start: Start
) -> None:
    """SAN -> user, OU -> group -> role; no user, password or token on the connection."""
    await start(verifying)
    pki = verifying.pki
    device = pki.devices.issue(
        name(CN="t-17", OU="sensors"), dns=["t-17.devices.example.org"], **_today()
    )
    info = await user_info(verifying, pki.context(device, pki.devices))
    assert (info["account"], info["user"]) == (verifying.account("APP"), "t-17")
    assert sorted(info["permissions"]["publish"]["allow"]) == [
        "$SYS.REQ.USER.INFO",
        "telemetry.t-17.>",
    ]


async def test_a_spiffe_workload_lands_in_its_groups_account(
    verifying: TlsServer, start: Start
) -> None:
    await start(verifying)
    pki = verifying.pki
    svid = pki.devices.issue(name(CN="checkout"), uris=[WORKLOAD], **_today())
    info = await user_info(verifying, pki.context(svid, pki.devices))
    assert (info["account"], info["user"]) == (verifying.account("OPS"), "checkout")
    assert "svc.shop.checkout.>" in info["permissions"]["publish"]["allow"]


async def test_what_the_server_trusts_but_we_do_not_is_refused(
    verifying: TlsServer, start: Start
) -> None:
    """The server verified this chain against its own CA file; our CA bundle decides."""
    app = await start(verifying)
    pki = verifying.pki
    stranger = pki.foreign.issue(
        name(CN="t-1", OU="sensors"), dns=["t-1.devices.example.org"], **_today()
    )
    await refused(verifying, pki.context(stranger, pki.foreign))
    assert decisions(app).get(Reason.UNTRUSTED_ISSUER) == 1


async def test_a_san_crafted_with_a_wildcard_cannot_widen_its_grant(
    verifying: TlsServer, start: Start
) -> None:
    """A certificate for ``x>.devices.example.org`` names the user ``x>``: the template
    ``telemetry.{{user.name}}.>`` refuses it rather than grant a wildcard."""
    app = await start(verifying)
    pki = verifying.pki
    crafted = pki.devices.issue(
        name(CN="x", OU="sensors"), dns=["x>.devices.example.org"], **_today()
    )
    await refused(verifying, pki.context(crafted, pki.devices))
    assert decisions(app).get(Reason.UNSAFE_TEMPLATE_VALUE) == 1


async def test_a_certificate_revoked_by_the_crl_is_refused(
    verifying: TlsServer, start: Start
) -> None:
    pki = verifying.pki
    app = await start(verifying, crl_files=[str(pki.directory / "devices.crl")])
    await refused(verifying, pki.context(pki.revoked, pki.devices))
    assert decisions(app).get(Reason.INVALID_CERTIFICATE) == 1
    fine = pki.devices.issue(
        name(CN="t-3", OU="sensors"), dns=["t-3.devices.example.org"], **_today()
    )
    assert (await user_info(verifying, pki.context(fine, pki.devices)))["user"] == "t-3"


async def test_without_verify_the_server_asks_for_no_certificate(
    not_verifying: TlsServer, start: Start
) -> None:
    """nats-server has no optional-certificate mode for clients: with ``verify: false`` it
    does not request one, so a certificate the client holds never reaches the service and the
    login has no credentials."""
    app = await start(not_verifying)
    pki = not_verifying.pki
    device = pki.devices.issue(
        name(CN="t-4", OU="sensors"), dns=["t-4.devices.example.org"], **_today()
    )
    await refused(not_verifying, pki.context(device, pki.devices))
    assert decisions(app).get(Reason.NO_CREDENTIALS) == 1


async def test_the_service_exports_certificate_file_reloads_from_the_start(
    verifying: TlsServer, start: Start
) -> None:
    """The running service reads its cert backend's reload counts (through the chain's
    wrappers): both results are series at 0 before anything was reloaded."""
    app = await start(verifying)
    for result in ("success", "failure"):
        labels = {"backend": "cert", "result": result}
        value = app.metrics.registry.get_sample_value("callout_backend_file_reloads_total", labels)
        assert value == 0.0
    assert (
        app.metrics.registry.get_sample_value(
            "callout_backend_file_reloads_total", {"backend": "static", "result": "success"}
        )
        is None
    )  # a backend without files of its own has no series
