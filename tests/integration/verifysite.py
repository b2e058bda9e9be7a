"""What the `callout verify` integration tests share: a running server with the files the
service needs (`Site`), the test login, and a verify run beside a running service."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.operator_mode import OperatorModeSetup
from callout.devserver.processes import NatsServer
from callout.secretfiles import write_secret
from callout.service.app import App
from callout.settings import Settings
from callout.tools.checklist import Check
from callout.tools.verify import ProbeLogin, verify
from tests.integration.conftest import PASSWORDS

AUDIT = {"enabled": True, "subject": "callout.audit", "stream": "CALLOUT_AUDIT"}


@dataclass(frozen=True)
class Site:
    """A running nats-server, its set-up (keys, config) and a policy directory; ``secret``
    writes a file of its own for each test."""

    setup: ConfigModeSetup | OperatorModeSetup
    server: NatsServer
    policy_dir: Path
    directory: Path

    def settings(self, **overrides: Any) -> Settings:
        return self.setup.settings(self.policy_dir, **overrides)

    def secret(self, name: str, value: str) -> Path:
        path = self.directory / f"{secrets.token_hex(4)}-{name}"  # one file per test
        write_secret(path, value)
        return path


def alice(site: Site, password: str | None = None) -> ProbeLogin:
    secret = site.secret("alice.password", password or PASSWORDS["alice"])
    return ProbeLogin(user="alice", password_file=secret)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


async def verify_with_service(
    settings: Settings, login: ProbeLogin | None, expect: str | None = "allow"
) -> dict[str, Check]:
    """Run verify while the service runs with the same settings (the operator's situation)."""
    app = App(settings)
    await app.start()
    try:
        checks = await verify(settings, login, expect=expect)
    finally:
        await app.stop()
    return by_name(checks)
