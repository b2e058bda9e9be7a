"""Real nats-server environments for the shared integration suite (callout.go's pattern).

Every behaviour test runs in each environment of `ENVIRONMENTS` (tests/integration/
environments.py): config mode in the global account, config mode with AUTH/APP/OPS accounts,
and xkey-encrypted; operator mode (a minted operator/account/user JWT chain, memory resolver)
plain, with xkey and ``allowed_accounts: ["*"]``, with a ``default_sentinel``, with signing
keys, with two target accounts. Tests ask the environment (`Environment.connect`,
`Environment.raw_fields`, `Environment.account`, ...) instead of branching on the mode.
Servers are synchronous, session-scoped subprocesses on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from callout.service.app import App
from tests.integration.config_environment import ConfigEnvironment
from tests.integration.environments import Environment, connect, fresh
from tests.integration.operator_environment import OperatorEnvironment
from tests.integration.users import LOAD_USER, PASSWORDS, SENSOR, write_policy

__all__ = [
    "ENVIRONMENTS",
    "LOAD_USER",
    "PASSWORDS",
    "SENSOR",
    "Environment",
    "connect",
    "environment",
    "write_policy",
]

ENVIRONMENTS: tuple[Environment, ...] = (
    ConfigEnvironment("global", callout_account=None),
    ConfigEnvironment("accounts"),
    ConfigEnvironment("xkey", encrypted=True),
    OperatorEnvironment("operator", target_accounts=("APP",)),
    OperatorEnvironment("operator-xkey", encrypted=True, any_account=True),
    OperatorEnvironment("operator-default-sentinel", default_sentinel=True),
    OperatorEnvironment("operator-signing-keys", signing_keys=True),
    OperatorEnvironment("operator-two-accounts"),
)


def environment(name: str) -> Environment:
    """A fresh copy of the suite environment ``name``, not started."""
    return fresh(next(env for env in ENVIRONMENTS if env.name == name))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `nkey_login` are not generated for environments where an nkey login cannot
    exist (a protocol limit, not a skip): they are deselected, never reported as skipped."""
    impossible = [
        item
        for item in items
        if item.get_closest_marker("nkey_login")
        and (env := getattr(item, "callspec", None) and item.callspec.params.get("deployment"))
        and not env.nkey_logins
    ]
    if impossible:
        config.hook.pytest_deselected(items=impossible)
        items[:] = [item for item in items if item not in impossible]


@pytest.fixture(scope="session", params=ENVIRONMENTS, ids=lambda env: env.name)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Environment]:
    env = fresh(request.param)
    env.start(tmp_path_factory.mktemp(env.name))
    try:
        yield env
    finally:
        env.stop()


@pytest.fixture
async def service(deployment: Environment) -> AsyncIterator[App]:
    app = App(deployment.settings())
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
