"""One class per server environment (callout.go's `CalloutEnv` pattern).

An `Environment` starts a real nats-server on 127.0.0.1 with what the service needs to join it,
and says how clients and the service connect, and how the server names accounts. Tests ask it
instead of branching on the mode. The implementations: `config_environment.ConfigEnvironment`
(``authorization { auth_callout }``, in the global account or with accounts) and
`operator_environment.OperatorEnvironment` (a minted operator/account/user JWT chain, memory
resolver). Options are their fields; `start` brings the server up, `stop` ends it by PID.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import nats
from nats.aio.client import Client

from callout.devserver.processes import NatsServer
from callout.settings import Settings

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
