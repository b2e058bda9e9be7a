"""Failed-login throttling against a real nats-server: per principal, per address, dropped."""

from __future__ import annotations

import asyncio
import time

import pytest

from callout.decision import DropReason, Reason
from callout.service.app import App
from tests.counts import decisions, drops
from tests.integration.config_environment import ConfigEnvironment
from tests.integration.conftest import ENVIRONMENTS
from tests.integration.environments import Environment
from tests.integration.rawclient import raw_connect
from tests.integration.users import LOAD_USER, PASSWORDS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("deployment", [ENVIRONMENTS[1]], indirect=True, ids=["accounts"]),
]


async def _login(deployment: Environment, user: str, password: str) -> tuple[str, float]:
    started = time.monotonic()
    _, line = await raw_connect(deployment.server.port, {"user": user, "pass": password})
    return line, time.monotonic() - started


def _dropped(app: App) -> float:
    value = app.metrics.registry.get_sample_value(
        "callout_requests_dropped_total", {"reason": "throttled"}
    )
    return value or 0.0


async def test_a_guessed_password_is_dropped_after_the_principal_limit_even_when_right(
    deployment: ConfigEnvironment,
) -> None:
    """Once throttled, even the right password gets no answer: guessing gains nothing, and
    each further try costs the guesser the server's whole timeout."""
    throttle = {"max_failures_per_principal": 3, "max_failures_per_ip": 1000, "window": "1m"}
    app = App(deployment.settings(throttle=throttle))
    await app.start()
    try:
        for _ in range(3):
            line, _ = await _login(deployment, "alice", "guess")
            assert "Authorization Violation" in line
        line, elapsed = await _login(deployment, "alice", PASSWORDS["alice"])
        assert "Authorization Violation" in line
        assert elapsed >= deployment.setup.timeout * 0.8  # no reply: the server timed out
        assert drops(app.metrics)[DropReason.THROTTLED] == 1
        assert _dropped(app) == 1
        other, _ = await _login(deployment, "bob", PASSWORDS["bob"])
        assert other == "PONG"  # other principals from the same address are unaffected
    finally:
        await app.stop()


async def test_many_unknown_names_from_one_address_are_throttled_by_address(
    deployment: ConfigEnvironment,
) -> None:
    """Spraying user names defeats a per-user limit; the per-address limit catches it."""
    throttle = {"max_failures_per_principal": 100, "max_failures_per_ip": 3, "window": "1m"}
    app = App(deployment.settings(throttle=throttle))
    await app.start()
    try:
        for index in range(3):
            line, _ = await _login(deployment, f"guess-{index}", "x")
            assert "Authorization Violation" in line
        line, elapsed = await _login(deployment, "alice", PASSWORDS["alice"])
        assert "Authorization Violation" in line
        assert elapsed >= deployment.setup.timeout * 0.8
        assert _dropped(app) == 1
    finally:
        await app.stop()


async def test_a_success_clears_the_principal_failures(deployment: Environment) -> None:
    """A user who mistyped twice and then logged in does not start the next day half-locked."""
    throttle = {"max_failures_per_principal": 3, "max_failures_per_ip": 1000}
    app = App(deployment.settings(throttle=throttle))
    await app.start()
    try:
        for _ in range(2):
            await _login(deployment, "alice", "typo")
        assert (await _login(deployment, "alice", PASSWORDS["alice"]))[0] == "PONG"
        for _ in range(2):
            await _login(deployment, "alice", "typo")
        assert (await _login(deployment, "alice", PASSWORDS["alice"]))[0] == "PONG"
        assert _dropped(app) == 0
    finally:
        await app.stop()


async def test_guesses_from_elsewhere_cannot_lock_a_user_out_of_her_own_address(
    deployment: Environment,
) -> None:
    """Guessing alice's password from four other addresses caps her logins from new addresses,
    never from the one she logged in from before."""
    throttle = {
        "max_failures_per_principal": 100,
        "max_failures_per_ip": 1000,
        "max_failures_per_principal_unfamiliar": 4,
        "window": "1h",
    }
    app = App(deployment.settings(throttle=throttle))
    await app.start()
    port = deployment.server.port
    right = {"user": "alice", "pass": PASSWORDS["alice"]}
    try:
        assert (await raw_connect(port, right))[1] == "PONG"  # 127.0.0.1 is now familiar
        for index in range(4):
            _, line = await raw_connect(
                port, {"user": "alice", "pass": "guess"}, source=f"127.0.0.{2 + index}"
            )
            assert "Authorization Violation" in line
        _, line = await raw_connect(port, right, source="127.0.0.7")
        assert "Authorization Violation" in line  # a new address: capped, even when right
        assert _dropped(app) == 1
        assert (await raw_connect(port, right))[1] == "PONG"  # her own address: unaffected
    finally:
        await app.stop()


async def test_concurrent_logins_of_one_account_wait_instead_of_being_refused(
    deployment: Environment,
) -> None:
    """Twenty clients of one account at once from one address, the decision cache off, a limit
    of 3 per principal and address: three are verified, the others wait for the first success
    (the address becomes familiar) and then get in. Nobody is refused for being concurrent."""
    throttle = {"max_failures_per_principal": 3, "max_failures_per_ip": 1000}
    settings = deployment.settings(throttle=throttle, decision_cache={"ttl": 0})
    app = App(settings)
    await app.start()
    user, password = LOAD_USER  # bcrypt cost 4: the expensive lane, quickly
    try:
        lines = await asyncio.gather(
            *(
                raw_connect(deployment.server.port, {"user": user, "pass": password})
                for _ in range(20)
            )
        )
    finally:
        await app.stop()
    assert [line for _, line in lines] == ["PONG"] * 20
    assert _dropped(app) == 0


async def test_simultaneous_wrong_passwords_cannot_multiply_the_limit(
    deployment: Environment,
) -> None:
    """Thirty different wrong passwords for one user from one address, all at once, against a
    limit of 3: exactly three are verified (attempts count when they start), the other 27 are
    dropped as throttled once those three have failed."""
    throttle = {"max_failures_per_principal": 3, "max_failures_per_ip": 1000, "window": "1h"}
    app = App(deployment.settings(throttle=throttle))
    await app.start()
    try:
        lines = await asyncio.gather(
            *(
                raw_connect(deployment.server.port, {"user": "alice", "pass": f"guess-{index}"})
                for index in range(30)
            )
        )
    finally:
        await app.stop()
    assert all("Authorization Violation" in line for _, line in lines)
    assert decisions(app.metrics) == {Reason.BAD_CREDENTIALS: 3}
    assert drops(app.metrics) == {DropReason.THROTTLED: 27}
    assert _dropped(app) == 27
