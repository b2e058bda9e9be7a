"""What `callout verify` keeps while it watches a busy server: bounded, and never someone
else's login mistaken for the test login."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest

from callout.policy.loader import load_policy
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.issuer import ConfigModeIssuer
from callout.service.runtime import Runtime
from callout.testing import ServerSimulator
from callout.tools.verifylogin import MAX_KEPT, SAMPLES, Capture

MARKER = "callout-verify-0000"


@dataclass
class Msg:
    """A received NATS message as the subscription callback sees it (the port boundary)."""

    data: bytes
    headers: dict[str, str] | None = None


@pytest.fixture
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    directory = tmp_path_factory.mktemp("policy")
    (directory / "p.yaml").write_text("version: 1\ndefaults: {account: APP}\n")
    issuer = ConfigModeIssuer(KeyPair.generate(KeyRole.ACCOUNT), frozenset({"APP"}))
    return Runtime(load_policy(directory), issuer)


def _request(name: str) -> Msg:
    payload, _ = ServerSimulator().request(now=int(time.time()), client={"name": name})
    return Msg(payload)


def _advisory(name: str, reason: str) -> Msg:
    body = {"server": {"id": "N1"}, "client": {"id": 1, "name": name}, "reason": reason}
    return Msg(json.dumps(body).encode())


async def test_only_the_test_logins_advisory_is_kept(runtime: Runtime) -> None:
    """Other clients failing at the same time must not lend their reason to the test login."""
    capture = Capture(MARKER, runtime)
    for _ in range(10):
        await capture.on_advisory(_advisory("someone", "Wrong issuer for auth callout response"))
    await capture.on_advisory(_advisory(MARKER, ""))
    assert capture.reasons == [""]


async def test_the_test_logins_request_is_kept_after_many_others(runtime: Runtime) -> None:
    capture = Capture(MARKER, runtime)
    for _ in range(3 * SAMPLES):
        await capture.on_request(_request("someone"))
    assert len(capture.requests) == SAMPLES
    await capture.on_request(_request(MARKER))
    assert len(capture.requests) == SAMPLES + 1


async def test_what_is_kept_is_bounded(runtime: Runtime) -> None:
    capture = Capture(MARKER, runtime)
    ours = _request(MARKER)
    for _ in range(MAX_KEPT + 10):
        await capture.on_request(ours)
        await capture.on_advisory(_advisory(MARKER, "x"))
    assert len(capture.requests) == MAX_KEPT
    assert len(capture.reasons) == MAX_KEPT


async def test_malformed_advisories_are_ignored(runtime: Runtime) -> None:
    capture = Capture(MARKER, runtime)
    padded = json.dumps({"client": {"name": MARKER}, "reason": "x", "pad": "y" * 70_000})
    for data in (padded.encode(), b"not json", b"[1]", b'{"client": "x"}'):
        await capture.on_advisory(Msg(data))
    assert capture.reasons == []
