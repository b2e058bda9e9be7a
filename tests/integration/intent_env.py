"""A nats-server with JetStream (domain ``hub``) behind the callout, in config mode or in
operator mode (JetStream enabled in the target account's JWT, plain user/password clients
through a ``default_sentinel``), and one policy user per intent, for the grants-by-intent wire
tests (`test_intents.py`).

Every user logs in with a password (bcrypt cost 4: quick on a shared machine) and, apart from
``admin``, holds exactly one intent plus ``private_inbox: true``, so each test shows what that
one grant allows. ``admin`` (``>``) creates the streams and buckets, as an operator would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import nats
from nats.aio.client import Client

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.operator_mode import OperatorModeSetup
from callout.devserver.processes import NatsServer
from callout.policy.intents import inbox_prefix

DOMAIN = "hub"
ADMIN = "admin"

INTENTS = {
    "consumer": "jetstream: [{stream: ORDERS, consume: [worker]}]",
    "anyconsumer": 'jetstream: [{stream: ORDERS, consume: ["*"]}]',
    "publisher": 'jetstream: [{stream: ORDERS, publish: true, subjects: ["orders.>"]}]',
    "manager": "jetstream: [{stream: SCRATCH, manage: true}]",
    "remote": "jetstream: [{stream: ORDERS, consume: [worker], domain: hub}]",
    "kvreader": 'kv: [{bucket: profiles, read: true, keys: "users.{{user.name}}.>"}]',
    "kvwriter": 'kv: [{bucket: profiles, read: true, write: true, keys: "users.{{user.name}}.>"}]',
    "settings": "kv: [{bucket: settings, read: true}]",
    "kvputter": 'kv: [{bucket: profiles, write: true, keys: "users.{{user.name}}.>"}]',
    "objreader": "object_store: [{bucket: files, read: true}]",
    "objwriter": "object_store: [{bucket: files, read: true, write: true}]",
    "objputter": "object_store: [{bucket: files, write: true}]",
    "caller": "service: [{name: echo, call: true}]",
    "server": "service: [{name: echo, serve: true}]",
    "mallory": "service: [{name: echo, call: true}]",
    "rpcserver": 'service: [{name: billing, serve: true, subjects: ["rpc.billing.*"]}]',
    "rpccaller": 'service: [{name: billing, call: true, subjects: ["rpc.billing.*"]}]',
}


def password(user: str) -> str:
    return f"{user}-pw"


def policy_text() -> str:
    salt = bcrypt.gensalt(4)
    lines = ["version: 1", "defaults:", "  account: APP", "users:"]
    admin_hash = bcrypt.hashpw(password(ADMIN).encode(), salt).decode()
    lines += [
        f"  {ADMIN}:",
        f'    password: "{admin_hash}"',
        '    publish: {allow: [">"]}',
        '    subscribe: {allow: [">"]}',
    ]
    for user, intent in INTENTS.items():
        user_hash = bcrypt.hashpw(password(user).encode(), salt).decode()
        lines += [f"  {user}:", f'    password: "{user_hash}"', f"    {intent}"]
        lines.append("    private_inbox: true")
    return "\n".join(lines) + "\n"


@dataclass
class Observed:
    """A connected client and the permission errors the server sent it."""

    nc: Client
    errors: list[str] = field(default_factory=list)

    async def violation(self, verb: str, subject: str, *, exact: bool = True) -> bool:
        """Whether the server refused ``verb`` (Publish/Subscription) to ``subject`` (or to a
        subject starting with it, when not ``exact``)."""
        end = '"' if exact else ""
        wanted = f'permissions violation for {verb} to "{subject}{end}'.lower()
        for _ in range(250):  # bounded: 5 s
            if any(wanted in error.lower() for error in self.errors):
                return True
            await asyncio.sleep(0.02)
        return False


@dataclass(frozen=True)
class IntentServer:
    setup: ConfigModeSetup | OperatorModeSetup
    server: NatsServer
    policy_dir: Path

    @asynccontextmanager
    async def client(
        self, user: str, *, private: bool = True, **options: Any
    ) -> AsyncIterator[Observed]:
        """``user`` logged in through the callout, on its private inbox prefix."""
        errors: list[str] = []

        async def on_error(error: Exception) -> None:
            errors.append(str(error))

        if private and user != ADMIN:
            options.setdefault("inbox_prefix", inbox_prefix("static", user))
        nc = await nats.connect(
            self.server.url,
            user=user,
            password=password(user),
            error_cb=on_error,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=5,
            **options,
        )
        holder = Observed(nc, errors)
        try:
            yield holder
        finally:
            await holder.nc.close()


MODES = ("config", "operator")


def intent_server(
    directory: Path, port: int, mode: str = "config", **config: Any
) -> tuple[ConfigModeSetup | OperatorModeSetup, Path]:
    """The server's files for ``mode`` (one of `MODES`) and the policy directory; ``config``
    overrides `ConfigModeSetup` fields (config mode only)."""
    setup: ConfigModeSetup | OperatorModeSetup
    if mode == "operator":
        setup = OperatorModeSetup(
            directory / "keys",
            port,
            target_accounts=("APP",),
            default_sentinel=True,
            jetstream=True,
            jetstream_domain=DOMAIN,
        ).write()
    else:
        setup = ConfigModeSetup(
            directory / "keys",
            port,
            target_accounts=("APP",),
            **{"jetstream": True, "jetstream_targets": True, "jetstream_domain": DOMAIN, **config},
        ).write()
    policy_dir = directory / "policies"
    policy_dir.mkdir()
    (policy_dir / "policy.yaml").write_text(policy_text(), encoding="utf-8")
    return setup, policy_dir
