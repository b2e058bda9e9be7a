"""The certificate backend's inline driver (`authenticate_now`): the decision `authenticate`
makes while no look at the CA and CRL files is due, and `LATER` when one is (the look starts
from `authenticate`, in its task)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from callout.backends.base import LATER
from callout.backends.certificates import REFRESH_INTERVAL, CertificateBackend
from callout.credentials.certificates import TrustAnchors
from callout.decision import Decision, Identity
from tests.certificates import DAY, NOW, Authority, Client, name
from tests.unit.backends.certs import AT, SPIFFE, settings, snapshot_placeholder, with_tls

Issue = Callable[[Authority, Authority], tuple[Client, tuple[Authority, ...]]]


def _backend(root: Authority, now: list[float]) -> CertificateBackend:
    anchors = TrustAnchors([root.certificate], max_depth=settings().max_chain_length)
    return CertificateBackend(settings(), anchors, clock=lambda: now[0])


CASES: dict[str, Issue] = {
    "svid": lambda root, devices: (devices.issue(name(CN="c"), uris=[SPIFFE]), (devices,)),
    "device": lambda root, devices: (
        devices.issue(name(CN="t-1", OU="sensors"), dns=["t-1.devices.example.org"]),
        (devices,),
    ),
    "expired": lambda root, devices: (
        root.issue(dns=["t-1.devices.example.org"], not_before=NOW - 10 * DAY, not_after=NOW - DAY),
        (),
    ),
    "untrusted": lambda root, devices: (
        Authority.root("Another CA").issue(dns=["t-1.devices.example.org"]),
        (),
    ),
    "unmapped": lambda root, devices: (root.issue(dns=["nobody.example.com"]), ()),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_the_inline_decision_is_the_slow_one(
    root: Authority, devices: Authority, case: str
) -> None:
    """Same identity or same deny (reason and detail) from both drivers."""
    client, chain = CASES[case](root, devices)
    tls = with_tls((client.pem, *(authority.pem for authority in chain)))
    backend = _backend(root, [AT])
    inline = backend.authenticate_now(tls, snapshot_placeholder())
    slow = await backend.authenticate(tls, snapshot_placeholder())
    assert inline is not LATER
    assert type(inline) is type(slow)
    if isinstance(slow, Decision):
        assert isinstance(inline, Decision)
        assert (inline.reason, inline.detail) == (slow.reason, slow.detail)
    else:
        assert isinstance(slow, Identity)
        assert inline == slow


async def test_when_a_look_at_the_files_is_due_the_inline_driver_defers(
    root: Authority, devices: Authority
) -> None:
    """The look is `authenticate`'s (it starts a thread); afterwards inline decides again."""
    now = [AT]
    backend = _backend(root, now)
    client = devices.issue(name(CN="c"), uris=[SPIFFE])
    tls = with_tls((client.pem, devices.pem))
    assert isinstance(backend.authenticate_now(tls, snapshot_placeholder()), Identity)
    now[0] += REFRESH_INTERVAL
    assert backend.authenticate_now(tls, snapshot_placeholder()) is LATER
    assert backend.refreshing is None  # the inline driver started nothing
    assert isinstance(await backend.authenticate(tls, snapshot_placeholder()), Identity)
    assert backend.refreshing is not None  # the slow driver started the look
    assert isinstance(backend.authenticate_now(tls, snapshot_placeholder()), Identity)
    await asyncio.wait_for(backend.refreshing, 5.0)


def test_no_certificate_is_none_inline(root: Authority) -> None:
    backend = _backend(root, [AT])
    empty: Any = with_tls(())
    assert backend.authenticate_now(empty, snapshot_placeholder()) is None
