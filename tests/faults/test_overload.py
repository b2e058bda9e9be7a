"""Overload: more concurrent logins than the service may hold are shed at once, and counted."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence

import pytest

from callout.backends.base import Backend
from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.decision import Decision, DropReason, Identity, Reason
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.service.app import App
from tests.counts import decisions, drops
from tests.integration.environments import Environment
from tests.integration.rawclient import raw_connect
from tests.integration.users import SENSOR

pytestmark = pytest.mark.integration


class _Slow:
    name = "static"

    def __init__(self, inner: Backend, delay: float) -> None:
        self.inner, self.delay = inner, delay

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        await asyncio.sleep(self.delay)
        return await self.inner.authenticate(request, policy)


def _slow_chain(verifier: PasswordVerifier) -> Sequence[Backend]:
    return [_Slow(StaticBackend(verifier), 0.4)]


async def _nkey_login(port: int) -> str:
    def sign(nonce: str) -> str:
        return base64.b64encode(SENSOR.sign(nonce.encode())).decode()

    _, line = await raw_connect(port, {"nkey": SENSOR.public_key, "sig": sign}, wait=6)
    return line


async def test_logins_beyond_the_bound_are_shed_not_queued(accounts: Environment) -> None:
    """A burst larger than max_pending is cut at once; what is held is answered in time;
    nothing waits past the server's timeout and memory is bounded by max_pending."""
    deployment = accounts
    settings = deployment.settings(service={"max_concurrency": 4, "max_pending": 8})
    app = App(settings, backends=_slow_chain)
    await app.start()
    try:
        lines = await asyncio.gather(*(_nkey_login(deployment.server.port) for _ in range(24)))
    finally:
        await app.stop()
    allowed = sum(line == "PONG" for line in lines)
    # 8 held (4 deciding, 4 waiting: two rounds of 0.4 s, well inside the 2 s budget) and
    # answered; the other 16 were shed on arrival rather than queued towards their deadline.
    assert allowed == 8, lines
    assert decisions(app.metrics)[Reason.ALLOWED] == 8
    assert drops(app.metrics)[DropReason.OVERLOAD] == 16
    assert drops(app.metrics)[DropReason.EXPIRED] == 0
