"""Under attack, against a real nats-server: honest cheap logins still get in, expensive work
that cannot finish in time is refused at once with a signed deny, every request is exactly one
audit event, and faults inside a request task are typed outcomes."""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import argon2
import nats
import pytest
from structlog.testing import capture_logs

from callout.backends.base import Backend
from callout.backends.passwords import PasswordVerifier
from callout.credentials.passwords import hash_password
from callout.credentials.tokens import hmac_hash, new_token
from callout.decision import DropReason, Reason
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.protocol.nkeys import KeyRole, encode_public
from callout.service.app import App
from tests.counts import decisions, drops
from tests.integration.conftest import environment
from tests.integration.environments import Environment
from tests.integration.rawclient import raw_connect
from tests.integration.users import PASSWORDS, SENSOR

pytestmark = pytest.mark.integration

PEPPER = "a-pepper-for-tests-only-0123456789abcdef"
TOKEN = new_token("nac", "ci-deploy")
PONG = "PONG"
VIOLATION = "Authorization Violation"
ATTACKERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
_TOKENS = """\
version: 1
tokens:
  ci-deploy:
    hash: "{token_hash}"
    owner: team-ci@example.org
    roles: [app]
"""


def _settings(deployment: Environment, tmp_path: Path, **overrides: Any) -> Any:
    """Chain [token, static]; the deployment's policy plus one API token."""
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(deployment.policy_dir / "policy.yaml", policies / "policy.yaml")
    token_hash = hmac_hash(PEPPER.encode(), TOKEN.text)
    (policies / "tokens.yaml").write_text(_TOKENS.format(token_hash=token_hash))
    pepper = tmp_path / "pepper"
    pepper.write_text(PEPPER)
    pepper.chmod(0o600)
    backends = [{"type": "token", "pepper_file": str(pepper)}, {"type": "static"}]
    return deployment.settings(backends=backends, policy={"directory": policies}, **overrides)


async def _line(port: int, fields: dict[str, Any], source: str | None = None) -> str:
    _, line = await raw_connect(port, fields, wait=8, source=source)
    return line


def _nkey_fields() -> dict[str, Any]:
    def sign(nonce: str) -> str:
        return base64.b64encode(SENSOR.sign(nonce.encode())).decode()

    return {"nkey": SENSOR.public_key, "sig": sign}


def _audit(captured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in captured if entry.get("logger") == "callout.audit"]


def _requests_metric(app: App, outcome: str, reason: str) -> float:
    samples = [
        sample
        for metric in app.metrics.registry.collect()
        if metric.name == "callout_auth_requests"
        for sample in metric.samples
        if sample.name == "callout_auth_requests_total"
        and sample.labels["outcome"] == outcome
        and sample.labels["reason"] == reason
    ]
    return sum(sample.value for sample in samples)


def _lane_refused(app: App, lane: str) -> float:
    return _lane_sample(app, "callout_lane_refused_total", lane)


def _lane_busy(app: App, lane: str) -> float:
    return _lane_sample(app, "callout_lane_busy_requests", lane)


def _lane_sample(app: App, name: str, lane: str) -> float:
    return sum(
        sample.value
        for metric in app.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == name and sample.labels["lane"] == lane
    )


async def test_honest_cheap_logins_get_in_while_sixty_wrong_passwords_hammer_the_kdf(
    accounts: Environment, tmp_path: Path
) -> None:
    """60 concurrent wrong passwords for alice from 127.0.0.2-.5 while token, nkey and cached
    password logins come in from 127.0.0.1: every honest login succeeds, every attacker is
    refused (denied, overloaded, or throttled: no more than 10 guesses verified per address),
    and each request is exactly one audit event."""
    port = accounts.server.port
    throttle = {"window": "1h"}  # nothing drains during the test: the count is exact
    app = App(_settings(accounts, tmp_path, throttle=throttle))
    await app.start()
    try:
        alice = {"user": "alice", "pass": PASSWORDS["alice"]}
        assert await _line(port, alice) == PONG  # fills the decision cache
        with capture_logs() as captured:
            attackers = [
                asyncio.create_task(
                    _line(port, {"user": "alice", "pass": f"guess-{i}"}, ATTACKERS[i % 4])
                )
                for i in range(60)
            ]
            honest_fields = [{"auth_token": TOKEN.text}, _nkey_fields(), alice] * 8
            honest = await asyncio.gather(*(_line(port, fields) for fields in honest_fields))
            attacked = await asyncio.gather(*attackers)
    finally:
        await app.stop()
    assert honest == [PONG] * 24
    assert all(VIOLATION in line for line in attacked), Counter(attacked)
    metrics = app.metrics
    # at most 10 guesses verified per address (an overloaded refusal verified nothing and is
    # given back to the pair); every attacker is one outcome
    verified = decisions(metrics)[Reason.BAD_CREDENTIALS]
    assert verified <= 40
    overloaded, throttled = (
        decisions(metrics)[Reason.OVERLOADED],
        drops(metrics)[DropReason.THROTTLED],
    )
    # a verification that a loaded machine could not finish before the request's exp is
    # refused with a signed `backend_unavailable` (fail closed), never left to expire
    unfinished = decisions(metrics)[Reason.BACKEND_UNAVAILABLE]
    assert verified + overloaded + throttled + unfinished == 60
    assert throttled >= 20 - overloaded - unfinished
    assert drops(metrics)[DropReason.EXPIRED] == 0
    events = _audit(captured)
    assert len(events) == 84
    assert len({event["request_id"] for event in events}) == 84


async def test_what_cannot_be_decided_in_time_is_refused_at_once_with_a_signed_deny(
    accounts: Environment, tmp_path: Path
) -> None:
    """One expensive slot, a queue of two: a burst of 20 unknown-user logins (each a KDF
    verify) is mostly refused on arrival with a signed ``overloaded`` deny instead of being
    left to expire; cheap logins during the burst are untouched."""
    port = accounts.server.port
    service = {"expensive_concurrency": 1, "expensive_queue": 2}
    app = App(_settings(accounts, tmp_path, service=service, throttle={"enabled": False}))
    await app.start()
    try:
        with capture_logs() as captured:
            burst = [
                _line(port, {"user": f"nobody-{i}", "pass": "x"}, ATTACKERS[i % 4])
                for i in range(20)
            ]
            cheap = [_line(port, {"auth_token": TOKEN.text}) for _ in range(5)]
            lines = await asyncio.gather(*burst, *cheap)
    finally:
        await app.stop()
    assert lines[20:] == [PONG] * 5
    assert all(VIOLATION in line for line in lines[:20])
    metrics = app.metrics
    overloaded = decisions(metrics)[Reason.OVERLOADED]
    assert overloaded >= 1  # how many depends on how the burst arrives: at least the queue's
    # on a loaded machine a verification may outlast what is left of its request: refused
    # with a signed `backend_unavailable` (fail closed), never left to expire
    unfinished = decisions(metrics)[Reason.BACKEND_UNAVAILABLE]
    counted = decisions(metrics)[Reason.UNKNOWN_USER] + overloaded + unfinished
    assert counted == 20, (decisions(metrics), drops(metrics))
    assert drops(metrics)[DropReason.EXPIRED] == 0
    assert _requests_metric(app, "deny", "overloaded") == overloaded
    assert _lane_refused(app, "expensive") == overloaded  # which lane refused them
    assert _lane_refused(app, "cheap") == 0
    refusals = [event for event in _audit(captured) if event["reason"] == "overloaded"]
    assert len(refusals) == overloaded
    assert all(event["replied"] for event in refusals)  # answered, signed: nobody waits


async def test_overload_alone_does_not_block_an_address_that_has_not_failed_a_login(
    accounts: Environment, tmp_path: Path
) -> None:
    """After a restart nobody is familiar anywhere. One slow login from another address holds
    the only expensive slot (no queue), so five honest users behind one address are each
    refused as ``overloaded``: more than the address's limit of 3. Without a failed login from
    the address those refusals do not count there: the next user gets in, nothing is refused
    as throttled (a counted overload would have blocked the address for the window)."""
    port = accounts.server.port
    service = {"expensive_concurrency": 1, "expensive_queue": 0}
    throttle = {"max_failures_per_ip": 3, "max_failures_per_principal": 3}
    settings = _settings(accounts, tmp_path, service=service, throttle=throttle)
    slow = argon2.PasswordHasher(time_cost=40, memory_cost=19456, parallelism=1)
    users = {f"nat-{index}": hash_password(f"nat-pw-{index}") for index in range(6)}
    users["slow"] = slow.hash("slow-pw")
    (tmp_path / "policies" / "storm.yaml").write_text(
        "version: 1\nusers:\n"
        + "".join(
            f'  {name}: {{password: "{hashed}", account: APP, publish: {{allow: ["a.>"]}}}}\n'
            for name, hashed in users.items()
        )
    )
    app = App(settings)
    await app.start()
    try:
        holder = asyncio.create_task(_line(port, {"user": "slow", "pass": "slow-pw"}, "127.0.0.7"))
        for _ in range(500):  # until the slow verification holds the slot
            if _lane_busy(app, "expensive"):
                break
            await asyncio.sleep(0.01)
        refused = [
            await _line(port, {"user": f"nat-{index}", "pass": f"nat-pw-{index}"}, "127.0.0.6")
            for index in range(5)
        ]
        await holder
        after = await _line(port, {"user": "nat-5", "pass": "nat-pw-5"}, "127.0.0.6")
    finally:
        await app.stop()
    metrics = app.metrics
    assert all(VIOLATION in line for line in refused), refused
    assert decisions(metrics)[Reason.OVERLOADED] == 5
    assert after == PONG
    assert drops(metrics)[DropReason.THROTTLED] == 0


class _Broken:
    """A backend with a bug: every password login raises."""

    name = "static"

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> None:  # pragma: no cover - signature only
        raise ZeroDivisionError("a bug")


def _broken_chain(verifier: PasswordVerifier) -> Sequence[Backend]:
    return [_Broken()]


async def test_a_backend_that_raises_is_one_internal_error_and_a_signed_deny(
    accounts: Environment,
) -> None:
    app = App(accounts.settings(), backends=_broken_chain)
    await app.start()
    try:
        with capture_logs() as captured:
            line = await _line(accounts.server.port, {"user": "alice", "pass": "x"})
    finally:
        await app.stop()
    assert VIOLATION in line
    [event] = _audit(captured)
    assert (event["reason"], event["replied"]) == ("internal_error", True)
    assert _requests_metric(app, "error", "internal_error") == 1


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    env = environment("xkey").start(tmp_path_factory.mktemp("sealed"))
    try:
        yield env
    finally:
        env.stop()


async def test_a_low_order_xkey_header_is_a_counted_drop(sealed: Environment) -> None:
    """A request whose Nats-Server-Xkey is 32 zero bytes (a low-order point: no shared key
    exists) is dropped as ``bad_xkey``, audited and counted once. nats-server lets no client
    publish on the callout subject, so the service listens on a test subject for this one,
    and the forged request travels through the real server."""
    base = sealed.settings()
    subject = "callout.test.auth"
    app = App(base.model_copy(update={"nats": base.nats.model_copy(update={"subject": subject})}))
    await app.start()
    nc = await nats.connect(sealed.url, **sealed.service_options(), allow_reconnect=False)
    try:
        with capture_logs() as captured:
            headers = {"Nats-Server-Xkey": encode_public(KeyRole.CURVE, bytes(32))}
            payload = b"xkv1" + bytes(64)
            await nc.publish(subject, payload, headers=headers)
            await nc.flush()
            for _ in range(100):  # bounded wait for the worker to report
                if drops(app.metrics):
                    break
                await asyncio.sleep(0.05)
    finally:
        await nc.close()
        await app.stop()
    assert drops(app.metrics) == {DropReason.BAD_XKEY: 1}
    [event] = _audit(captured)
    assert event["reason"] == "bad_xkey"
    dropped = app.metrics.registry.get_sample_value(
        "callout_requests_dropped_total", {"reason": "bad_xkey"}
    )
    assert dropped == 1


async def test_token_guesses_count_toward_the_address(
    accounts: Environment, tmp_path: Path
) -> None:
    """Unknown token ids from one address use up its limit: then even a valid token from that
    address is dropped, while the same token from another address logs in."""
    port = accounts.server.port
    throttle = {"max_failures_per_ip": 3, "window": "1h"}
    app = App(_settings(accounts, tmp_path, throttle=throttle))
    await app.start()
    try:
        for index in range(3):
            guess = new_token("nac", f"guess-{index}").text
            assert VIOLATION in await _line(port, {"auth_token": guess}, "127.0.0.6")
        assert VIOLATION in await _line(port, {"auth_token": TOKEN.text}, "127.0.0.6")
        assert await _line(port, {"auth_token": TOKEN.text}, "127.0.0.7") == PONG
    finally:
        await app.stop()
    assert decisions(app.metrics)[Reason.UNKNOWN_TOKEN] == 3
    assert drops(app.metrics) == {DropReason.THROTTLED: 1}
