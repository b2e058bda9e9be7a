"""One class per server environment (callout.go's `CalloutEnv` pattern).

An `Environment` starts a real nats-server on 127.0.0.1 with what the service needs to join it,
and says how clients and the service connect, and how the server names accounts. Tests ask it
instead of branching on the mode: `ConfigEnvironment` (``authorization { auth_callout }``, in
the global account or with accounts) and `OperatorEnvironment` (a minted operator/account/user
JWT chain, memory resolver). Options are fields; `start` brings the server up, `stop` ends it
by PID.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import nats
from nats.aio.client import Client

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.operator_mode import OperatorModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.protocol.nkeys import KeyPair, Role
from callout.secretfiles import write_secret
from callout.settings import Settings
from tests.integration.relay import ConnectRelay
from tests.integration.users import write_policy

NO_RETRY: dict[str, Any] = {
    "allow_reconnect": False,
    "max_reconnect_attempts": 0,
    "connect_timeout": 5,
}


async def connect(url: str, **options: Any) -> Client:
    """A client that does not retry: a refused login raises at once."""
    return await nats.connect(url, **{**NO_RETRY, **options})


class Environment(Protocol):
    """A running nats-server wired for auth callout, and how to use it."""

    name: str
    server: NatsServer
    policy_dir: Path

    @property
    def url(self) -> str: ...

    @property
    def nkey_logins(self) -> bool:
        """Whether nkey users can log in (not through a sentinel: its signature is the only
        one a CONNECT carries). Known before `start`."""
        ...

    @property
    def server_checks_user_jwts(self) -> bool:
        """Whether nats-server vets a client's own user JWT before calling out (operator
        mode: a stranger's account is unknown to it)."""
        ...

    def account(self, name: str) -> str:
        """How `$SYS.REQ.USER.INFO` names the account the policies call ``name``."""
        ...

    @property
    def main_account(self) -> str: ...

    @property
    def second_account(self) -> str: ...

    @property
    def second_account_name(self) -> str:
        """The second target account as policies name it."""
        ...

    def start(self, directory: Path, policy_dir: Path | None = None) -> Environment:
        """Keys, config and the server under ``directory``; the suite's policy unless
        ``policy_dir`` is given."""
        ...

    def stop(self) -> None: ...

    def settings(self, **overrides: Any) -> Settings:
        """Service settings that join this server."""
        ...

    def sessions_login(self) -> dict[str, Any]:
        """The ``sessions.system`` settings: a system-account login for live sessions."""
        ...

    def service_options(self) -> dict[str, Any]:
        """nats-py options that log in as the service's own user."""
        ...

    def cli_login(self) -> list[str]:
        """`callout sessions` arguments that log in as the service's own user."""
        ...

    def secrets(self) -> dict[str, str]:
        """Every secret of this set-up (seeds, passwords), by name: none may reach a log."""
        ...

    def unknown_signer(self, directory: Path) -> AbstractContextManager[tuple[dict[str, Any], str]]:
        """Settings overrides that make the service sign grants with a key this server does
        not know, and the reason the server gives (``*`` for the key), while in the block."""
        ...

    async def connect(
        self, *, user: str | None = None, password: str | None = None, **options: Any
    ) -> Client:
        """A client of this environment that does not retry: a refused login raises at once."""
        ...

    def raw_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """CONNECT fields for `rawclient.raw_connect`, plus what clients here must add."""
        ...


def fresh(env: Environment) -> Environment:
    """A copy of ``env`` (its options only) to start: the objects tests parametrize over are
    never started themselves, so that two fixtures can each run one."""
    return replace(env)  # type: ignore[type-var]  # both implementations are dataclasses


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
        write_secret(wrong, KeyPair.generate(Role.ACCOUNT).seed)
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
