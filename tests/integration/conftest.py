"""Real nats-server environments for the shared integration suite (callout.go's pattern).

Each `Environment` knows its server config; every behaviour test runs in each of them:
config mode in the global account, config mode with AUTH/APP/OPS accounts, and xkey-encrypted;
operator mode (a minted operator/account/user JWT chain, memory resolver) plain, with xkey and
``allowed_accounts: ["*"]``, with a ``default_sentinel``, with signing keys, with two target
accounts. Clients connect through `Deployment.connect` / `Deployment.raw_fields`, which add what
the environment needs (sentinel creds in operator mode). Servers are synchronous,
session-scoped subprocesses on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import nats
import pytest
from nats.aio.client import Client

from callout.credentials.passwords import hash_password
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.operator_mode import OperatorModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.app import App
from callout.settings import Settings


@dataclass(frozen=True)
class Environment:
    name: str
    callout_account: str | None = "AUTH"
    encrypted: bool = False
    operator: bool = False
    signing_keys: bool = False
    default_sentinel: bool = False
    two_accounts: bool = True
    any_account: bool = False

    @property
    def sentinel_creds(self) -> bool:
        """Clients carry the callout account's sentinel creds (no default_sentinel)."""
        return self.operator and not self.default_sentinel

    @property
    def nkey_logins(self) -> bool:
        """Whether nkey users can log in: not through a sentinel, whose signature is the only
        one a CONNECT carries."""
        return not self.sentinel_creds


ENVIRONMENTS = (
    Environment("global", callout_account=None),
    Environment("accounts"),
    Environment("xkey", encrypted=True),
    Environment("operator", operator=True, two_accounts=False),
    Environment("operator-xkey", operator=True, encrypted=True, any_account=True),
    Environment("operator-default-sentinel", operator=True, default_sentinel=True),
    Environment("operator-signing-keys", operator=True, signing_keys=True),
    Environment("operator-two-accounts", operator=True),
)

# A user for load tests: bcrypt at cost 4 verifies in about a millisecond, so 50 parallel logins
# measure the service's concurrency, not argon2 on a shared 2-core machine.
LOAD_USER = ("loader", "loader-pw")

PASSWORDS = {
    "alice": "alice-pw",
    "bob": "bob-pw",
    "shortlived": "short-pw",
    "lan-only": "lan-pw",
    "local-only": "local-pw",
    "namer": "namer-pw",
    "ws-only": "ws-pw",
}
SENSOR = KeyPair.generate(KeyRole.USER)

_POLICY = """\
version: 1
defaults:
  account: "{main}"
  expiry: 1h
roles:
  app:
    publish:
      allow: ["app.>", "$SYS.REQ.USER.INFO"]
    subscribe:
      allow: ["app.>", "_INBOX.>"]
  private:
    publish:
      allow: ["user.{{{{user.name}}}}.>"]
    subscribe:
      allow: ["user.{{{{user.name}}}}.>"]
  named:
    publish:
      allow: ["client.{{{{client.name}}}}.>"]
users:
  alice:
    password: "{alice}"
    roles: [app, private]
  bob:
    password: "{bob}"
    roles: [app]
    account: "{second}"
  shortlived:
    password: "{shortlived}"
    roles: [app]
    expiry: 2s
  lan-only:
    password: "{lan-only}"
    roles: [app]
    src: ["10.0.0.0/8"]
  local-only:
    password: "{local-only}"
    roles: [app]
    src: ["127.0.0.0/8", "::1/128"]
  namer:
    password: "{namer}"
    roles: [app, named]
  ws-only:
    password: "{ws-only}"
    roles: [app]
    connection_types: [WEBSOCKET]
  sensor:
    nkey: {sensor}
    roles: [app]
  {load_user}:
    password: "{load_hash}"
    roles: [app]
"""


class _SentinelClient(Client):
    """nats-py with sentinel creds that also sends user/password in CONNECT, as Go clients and
    the nats CLI do (`--creds sentinel.creds --user alice --password ...`); nats-py alone drops
    them when creds are set (docs/protocol.md#nats-py-behaviour)."""

    def __init__(self, extra: dict[str, str]) -> None:
        super().__init__()
        self._extra = extra

    def _connect_command(self) -> bytes:
        command = super()._connect_command()
        verb, body = command.split(b" ", 1)
        options = {**json.loads(body), **self._extra}
        return verb + b" " + json.dumps(options, sort_keys=True).encode() + b"\r\n"


@dataclass(frozen=True)
class Deployment:
    """A running nats-server for one environment, plus what the service needs to join it."""

    environment: Environment
    setup: ConfigModeSetup | OperatorModeSetup
    server: NatsServer
    policy_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def _account(self, name: str) -> str:
        """How `$SYS.REQ.USER.INFO` names account ``name``: operator mode by public key."""
        if isinstance(self.setup, OperatorModeSetup):
            return self.setup.public_key(name)
        return name if self.environment.callout_account else "$G"

    @property
    def main_account(self) -> str:
        return self._account("APP")

    @property
    def second_account_name(self) -> str:
        """The second target account as policies name it (the settings' account name)."""
        if not isinstance(self.setup, OperatorModeSetup) and not self.environment.callout_account:
            return "$G"
        return "OPS" if self.environment.two_accounts else "APP"

    @property
    def second_account(self) -> str:
        return self._account("OPS" if self.environment.two_accounts else "APP")

    @property
    def nkey_logins(self) -> bool:
        return self.environment.nkey_logins

    def settings(self, **overrides: Any) -> Settings:
        return self.setup.settings(self.policy_dir, **overrides)

    async def connect(
        self, *, user: str | None = None, password: str | None = None, **options: Any
    ) -> nats.NATS:
        """A client of this environment that does not retry: a refused login raises at once."""
        if not self.environment.sentinel_creds:
            credentials = {"user": user, "password": password} if user is not None else {}
            return await connect(self.url, **credentials, **options)
        assert isinstance(self.setup, OperatorModeSetup)
        if "nkeys_seed_str" in options:
            raise ValueError("nkey logins cannot go through a sentinel; check nkey_logins")
        extra = {"user": user, "pass": password or ""} if user is not None else {}
        client = _SentinelClient(extra)
        await client.connect(
            self.url,
            user_credentials=str(self.setup.sentinel_creds_file),
            **{**_NO_RETRY, **options},
        )
        return client

    def raw_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """CONNECT fields for `rawclient.raw_connect`, plus the sentinel's JWT and nonce
        signature where clients need one."""
        if not self.environment.sentinel_creds:
            return fields
        assert isinstance(self.setup, OperatorModeSetup)
        sentinel = self.setup.sentinel

        def sign(nonce: str) -> str:
            return base64.b64encode(sentinel.sign(nonce.encode())).decode()

        return {"jwt": self.setup.sentinel_jwt(), "sig": sign, **fields}


def write_policy(directory: Path, main: str, second: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    hashes = {name: hash_password(password) for name, password in PASSWORDS.items()}
    name, password = LOAD_USER
    load_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    text = _POLICY.format(
        main=main,
        second=second,
        sensor=SENSOR.public_key,
        load_user=name,
        load_hash=load_hash,
        **hashes,
    )
    (directory / "policy.yaml").write_text(text)
    return directory


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `nkey_login` are not generated for environments where an nkey login cannot
    exist (a protocol limit, not a skip): they are deselected, never reported as skipped."""
    impossible = [
        item
        for item in items
        if item.get_closest_marker("nkey_login")
        and isinstance(
            env := getattr(item, "callspec", None) and item.callspec.params.get("deployment"),
            Environment,
        )
        and not env.nkey_logins
    ]
    if impossible:
        config.hook.pytest_deselected(items=impossible)
        items[:] = [item for item in items if item not in impossible]


@pytest.fixture(scope="session", params=ENVIRONMENTS, ids=lambda env: env.name)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    environment: Environment = request.param
    directory = tmp_path_factory.mktemp(environment.name)
    setup: ConfigModeSetup | OperatorModeSetup
    if environment.operator:
        targets = ("APP", "OPS") if environment.two_accounts else ("APP",)
        setup = OperatorModeSetup(
            directory / "keys",
            free_port(),
            target_accounts=targets,
            signing_keys=environment.signing_keys,
            encrypted=environment.encrypted,
            default_sentinel=environment.default_sentinel,
            any_account=environment.any_account,
        ).write()
        main, second = targets[0], targets[-1]
    else:
        setup = ConfigModeSetup(
            directory / "keys",
            free_port(),
            callout_account=environment.callout_account,
            target_accounts=("APP", "OPS"),
            encrypted=environment.encrypted,
        ).write()
        main, second = ("APP", "OPS") if environment.callout_account else ("$G", "$G")
    policy_dir = write_policy(directory / "policies", main, second)
    with NatsServer(setup.config_file, setup.port) as server:
        yield Deployment(environment, setup, server, policy_dir)


@pytest.fixture
async def service(deployment: Deployment) -> AsyncIterator[App]:
    app = App(deployment.settings())
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


_NO_RETRY: dict[str, Any] = {
    "allow_reconnect": False,
    "max_reconnect_attempts": 0,
    "connect_timeout": 5,
}


async def connect(url: str, **options: Any) -> nats.NATS:
    """A client that does not retry: a refused login raises at once."""
    return await nats.connect(url, **{**_NO_RETRY, **options})
