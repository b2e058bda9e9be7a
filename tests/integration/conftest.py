"""Real nats-server environments for the shared integration suite (callout.go's pattern).

Each `Environment` knows its server config; every behaviour test runs in each of them:
config mode in the global account, config mode with AUTH/APP/OPS accounts, and xkey-encrypted.
Servers are synchronous, session-scoped subprocesses on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest

from callout.backends.passwords import hash_password
from callout.protocol.nkeys import KeyPair, Role
from callout.service.app import App
from callout.settings import Settings
from callout.testing import ConfigModeSetup, NatsServer, free_port


@dataclass(frozen=True)
class Environment:
    name: str
    callout_account: str | None
    encrypted: bool


ENVIRONMENTS = (
    Environment("global", None, False),
    Environment("accounts", "AUTH", False),
    Environment("xkey", "AUTH", True),
)

PASSWORDS = {
    "alice": "alice-pw",
    "bob": "bob-pw",
    "shortlived": "short-pw",
    "lan-only": "lan-pw",
    "local-only": "local-pw",
    "namer": "namer-pw",
    "ws-only": "ws-pw",
}
SENSOR = KeyPair.generate(Role.USER)

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
"""


@dataclass(frozen=True)
class Deployment:
    """A running nats-server for one environment, plus what the service needs to join it."""

    environment: Environment
    setup: ConfigModeSetup
    server: NatsServer
    policy_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def main_account(self) -> str:
        return "APP" if self.environment.callout_account else "$G"

    @property
    def second_account(self) -> str:
        return "OPS" if self.environment.callout_account else "$G"

    def settings(self, **overrides: Any) -> Settings:
        return self.setup.settings(self.policy_dir, **overrides)


def write_policy(directory: Path, main: str, second: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    hashes = {name: hash_password(password) for name, password in PASSWORDS.items()}
    text = _POLICY.format(main=main, second=second, sensor=SENSOR.public_key, **hashes)
    (directory / "policy.yaml").write_text(text)
    return directory


@pytest.fixture(scope="session", params=ENVIRONMENTS, ids=lambda env: env.name)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    environment: Environment = request.param
    directory = tmp_path_factory.mktemp(environment.name)
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


async def connect(url: str, **options: Any) -> nats.NATS:
    """A client that does not retry: a refused login raises at once."""
    return await nats.connect(
        url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5, **options
    )
