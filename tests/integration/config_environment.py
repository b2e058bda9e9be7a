"""`ConfigEnvironment`: nats-server in config mode (``authorization { auth_callout }``) for the
integration suite; see `tests.integration.environments`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.secretfiles import write_secret
from callout.settings import Settings
from tests.integration.environments import connect
from tests.integration.users import write_policy


@dataclass(eq=False)  # compared by identity: pytest keys session fixtures by param
class ConfigEnvironment:
    """Config mode. ``callout_account=None``: the service and users in the global account."""

    name: str
    callout_account: str | None = "AUTH"
    target_accounts: tuple[str, ...] = ("APP", "OPS")
    encrypted: bool = False
    jetstream: bool = False
    system_user: str | None = None  # a SYS system account with this user, for live sessions
    setup: ConfigModeSetup = field(init=False, repr=False)
    server: NatsServer = field(init=False, repr=False)
    policy_dir: Path = field(init=False, repr=False)

    nkey_logins = True
    server_checks_user_jwts = False

    @property
    def url(self) -> str:
        return self.server.url

    def account(self, name: str) -> str:
        return name if self.callout_account else "$G"

    @property
    def main_account(self) -> str:
        return self.account(self.target_accounts[0])

    @property
    def second_account(self) -> str:
        return self.account(self.target_accounts[-1])

    @property
    def second_account_name(self) -> str:
        return self.second_account

    def start(self, directory: Path, policy_dir: Path | None = None) -> ConfigEnvironment:
        self.setup = ConfigModeSetup(
            directory / "keys",
            free_port(),
            callout_account=self.callout_account,
            target_accounts=self.target_accounts,
            encrypted=self.encrypted,
            jetstream=self.jetstream,
            system_user=self.system_user,
        ).write()
        self.policy_dir = policy_dir or write_policy(
            directory / "policies", self.main_account, self.second_account
        )
        self.server = NatsServer(self.setup.config_file, self.setup.port)
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def settings(self, **overrides: Any) -> Settings:
        return self.setup.settings(self.policy_dir, **overrides)

    def sessions_login(self) -> dict[str, Any]:
        return {"user": self.system_user, "password_file": self.setup.system_password_file}

    def service_options(self) -> dict[str, Any]:
        return {"user": self.setup.auth_user, "password": self.setup.auth_password}

    def cli_login(self) -> list[str]:
        return ["--login", self.setup.auth_user, "--password-file", str(self.setup.password_file)]

    def secrets(self) -> dict[str, str]:
        return {
            "issuer seed": self.setup.issuer.seed,
            "xkey seed": self.setup.xkey.seed,
            "service password": self.setup.auth_password,
        }

    @contextmanager
    def unknown_signer(self, directory: Path) -> Iterator[tuple[dict[str, Any], str]]:
        wrong = directory / "wrong-issuer.nk"
        write_secret(wrong, KeyPair.generate(KeyRole.ACCOUNT).seed)
        keys: dict[str, Any] = {"issuer_seed_file": wrong}
        if self.encrypted:
            keys["xkey_seed_file"] = self.setup.xkey_seed_file
        yield {"keys": keys}, "Auth callout signing key is unknown"

    async def connect(
        self, *, user: str | None = None, password: str | None = None, **options: Any
    ) -> Client:
        credentials = {"user": user, "password": password} if user is not None else {}
        return await connect(self.url, **credentials, **options)

    def raw_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        return fields
