"""Concurrency and shutdown against a real nats-server: slow backends, drains, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from callout.backends.base import Backend
from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.decision import Decision, Identity
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.service.app import App
from tests.integration.environments import Environment
from tests.integration.rawclient import raw_connect
from tests.integration.users import LOAD_USER, PASSWORDS, SENSOR

pytestmark = pytest.mark.integration


class SlowBackend:
    """The static backend behind a fixed delay: an LDAP server on a bad day."""

    name = "static"

    def __init__(self, inner: Backend, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        await asyncio.sleep(self.delay)
        return await self.inner.authenticate(request, policy)


def _slow(delay: float):  # type: ignore[no-untyped-def]
    def factory(verifier: PasswordVerifier) -> Sequence[Backend]:
        return [SlowBackend(StaticBackend(verifier), delay)]

    return factory


async def _login(deployment: Environment) -> bool:
    """A cheap login: nkey where the environment allows it, else a cheap bcrypt password."""
    if deployment.nkey_logins:
        nc = await deployment.connect(nkeys_seed_str=SENSOR.seed)
    else:
        user, password = LOAD_USER
        nc = await deployment.connect(user=user, password=password)
    await nc.close()
    return True


async def test_fifty_parallel_logins_against_a_slow_backend_do_not_time_out(
    deployment: Environment,
) -> None:
    """nats-py runs callbacks one at a time; one task per request keeps a slow backend from
    serialising everyone (50 x 0.5 s serially would be 25 s against a 2 s server timeout)."""
    app = App(deployment.settings(), backends=_slow(0.5))
    await app.start()
    try:
        results = await asyncio.gather(
            *(_login(deployment) for _ in range(50)), return_exceptions=True
        )
    finally:
        await app.stop()
    failures = [result for result in results if result is not True]
    assert failures == []


async def test_stopping_lets_in_flight_requests_finish(deployment: Environment) -> None:
    """A drain answers what it already took: logins in flight at shutdown still succeed."""
    app = App(deployment.settings(), backends=_slow(0.6))
    await app.start()
    logins = [asyncio.create_task(_login(deployment)) for _ in range(5)]
    await asyncio.sleep(0.3)
    assert app.worker.in_flight == 5
    await app.stop()
    assert await asyncio.gather(*logins) == [True] * 5
    assert app.worker.cancelled == 0


async def test_sighup_reloads_and_sigterm_drains_and_exits_zero(
    deployment: Environment, tmp_path: Path
) -> None:
    """SIGHUP is the manual reload; Kubernetes stops pods with SIGTERM: drain and exit 0."""
    settings = deployment.settings()
    config = tmp_path / "callout.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_none=True)))
    process = subprocess.Popen(  # noqa: ASYNC220 - the child must outlive one await; waits go through to_thread
        [sys.executable, "-m", "callout", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "CALLOUT_LOG__FORMAT": "json"},
    )
    try:
        assert process.stdout is not None
        ready = await asyncio.wait_for(
            asyncio.to_thread(_wait_for_line, process.stdout, b"service_ready"), 20
        )
        assert ready
        nc = await deployment.connect(user="alice", password=PASSWORDS["alice"])
        await nc.close()
        process.send_signal(signal.SIGHUP)
        reloaded = await asyncio.wait_for(
            asyncio.to_thread(_wait_for_line, process.stdout, b'"policy_reloaded"'), 20
        )
        assert reloaded
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 20)
        rest = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0
    assert b"service_stopped" in rest


def _wait_for_line(stream, marker: bytes) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(1000):
        line = stream.readline()
        if not line:
            return False
        if marker in line:
            return True
    return False


async def test_a_client_of_a_stopped_service_is_refused_after_the_timeout(
    deployment: Environment,
) -> None:
    """With no service answering, the server refuses logins (fail closed), it never lets them in."""
    fields = deployment.raw_fields({"user": "alice", "pass": PASSWORDS["alice"]})
    _, line = await raw_connect(deployment.server.port, fields)
    assert "Authorization Violation" in line
