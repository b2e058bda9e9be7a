"""`OperatorEnvironment`: nats-server in operator mode (a minted operator/account/user JWT chain,
memory resolver) for the integration suite; see `tests.integration.environments`."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from callout.devserver.operator_mode import OperatorModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.secretfiles import write_secret
from callout.settings import Settings
from tests.integration.environments import connect
from tests.integration.relay import ConnectRelay
from tests.integration.users import write_policy


@dataclass(eq=False)
class OperatorEnvironment:
    """Operator mode. Without ``default_sentinel`` clients carry the callout account's
    sentinel creds, as `nats --creds sentinel.creds --user ... --password ...` does."""

    name: str
    target_accounts: tuple[str, ...] = ("APP", "OPS")
    scoped_accounts: tuple[str, ...] = ()
    encrypted: bool = False
    signing_keys: bool = False
    default_sentinel: bool = False
    any_account: bool = False
    system_target: bool = False
    stable_user_key: bool = False
    setup: OperatorModeSetup = field(init=False, repr=False)
    server: NatsServer = field(init=False, repr=False)
    policy_dir: Path = field(init=False, repr=False)

    server_checks_user_jwts = True

    @property
    def sentinel_creds(self) -> bool:
        return not self.default_sentinel

    @property
    def nkey_logins(self) -> bool:
        return not self.sentinel_creds

    @property
    def url(self) -> str:
        return self.server.url

    def account(self, name: str) -> str:
        return self.setup.public_key(name)

    @property
    def main_account(self) -> str:
        return self.account(self.target_accounts[0])

    @property
    def second_account(self) -> str:
        return self.account(self.target_accounts[-1])

    @property
    def second_account_name(self) -> str:
        return self.target_accounts[-1]

    def start(self, directory: Path, policy_dir: Path | None = None) -> OperatorEnvironment:
        self.setup = OperatorModeSetup(
            directory / "keys",
            free_port(),
            target_accounts=self.target_accounts,
            scoped_accounts=self.scoped_accounts,
            signing_keys=self.signing_keys,
            encrypted=self.encrypted,
            default_sentinel=self.default_sentinel,
            any_account=self.any_account,
            system_target=self.system_target,
            stable_user_key=self.stable_user_key,
        ).write()
        main, second = self.target_accounts[0], self.target_accounts[-1]
        self.policy_dir = policy_dir or write_policy(directory / "policies", main, second)
        self.server = NatsServer(self.setup.config_file, self.setup.port)
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def settings(self, **overrides: Any) -> Settings:
        return self.setup.settings(self.policy_dir, **overrides)

    def sessions_login(self) -> dict[str, Any]:
        return {"creds_file": self.setup.system_creds_file}

    def service_options(self) -> dict[str, Any]:
        return {"user_credentials": str(self.setup.service_creds_file)}

    def cli_login(self) -> list[str]:
        return ["--creds", str(self.setup.service_creds_file)]

    def secrets(self) -> dict[str, str]:
        found = {"xkey seed": self.setup.xkey.seed}
        for name, account in self.setup.accounts.items():
            found[f"{name} seed"] = account.key.seed
            found.update(
                {f"{name} signing seed {i}": k.seed for i, k in enumerate(account.signing)}
            )
        found["service user seed"] = self.setup.service_user.seed
        found["sentinel seed"] = self.setup.sentinel.seed
        return found

    @contextmanager
    def unknown_signer(self, directory: Path) -> Iterator[tuple[dict[str, Any], str]]:
        """A new signing key of APP that was never pushed to the server."""
        account = self.setup.accounts["APP"]
        active = account.active
        unknown = self.setup.add_signing_key("APP", activate=True)
        try:
            seed = directory / "unknown-app.nk"
            write_secret(seed, unknown.seed)
            values = self.setup.settings_values(self.policy_dir)["operator"]
            values["accounts"]["APP"]["signing_seed_file"] = seed
            yield {"operator": values}, 'User JWT issuer "*" is not known'
        finally:
            self.setup.remove_signing_key("APP", unknown.public_key)
            account.active = active

    async def connect(
        self, *, user: str | None = None, password: str | None = None, **options: Any
    ) -> Client:
        if not self.sentinel_creds:
            credentials = {"user": user, "password": password} if user is not None else {}
            return await connect(self.url, **credentials, **options)
        if "nkeys_seed_str" in options:
            raise ValueError("nkey logins cannot go through a sentinel; check nkey_logins")
        if user is None:
            creds = str(self.setup.sentinel_creds_file)
            return await connect(self.url, user_credentials=creds, **options)
        relay = await ConnectRelay(self.server.port, {"user": user, "pass": password or ""}).start()
        return await _through(relay, str(self.setup.sentinel_creds_file), options)

    def raw_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        if not self.sentinel_creds:
            return fields
        sentinel = self.setup.sentinel

        def sign(nonce: str) -> str:
            return base64.b64encode(sentinel.sign(nonce.encode())).decode()

        return {"jwt": self.setup.sentinel_jwt(), "sig": sign, **fields}


async def _through(relay: ConnectRelay, creds: str, options: dict[str, Any]) -> Client:
    """A nats-py client with sentinel ``creds`` connected through ``relay``, which closes
    when the client does (or fails to connect)."""
    closed_cb: Callable[[], Any] | None = options.pop("closed_cb", None)

    async def on_closed() -> None:
        if closed_cb is not None:
            await closed_cb()
        await relay.close()

    try:
        return await connect(relay.url, user_credentials=creds, closed_cb=on_closed, **options)
    except BaseException:
        await relay.close()
        raise
