"""The python-ldap directory client against a real slapd: search-then-bind, groups, TLS,
timeouts, outages, and an event loop that never waits on the directory."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from callout.backends.directory import LdapDirectory
from callout.backends.ldap import DirectoryUser
from callout.decision import Reason
from callout.errors import BackendUnavailableError
from callout.settings import LdapBackendSettings
from tests.integration.backends.conftest import ldap_backend
from tests.integration.backends.slapd import (
    GROUPS,
    SERVICE_PASSWORD,
    Slapd,
    group_dn,
    make_tls,
    person_dn,
)

pytestmark = pytest.mark.integration
T = TypeVar("T")
Open = Callable[..., Awaitable[LdapDirectory]]


@pytest.fixture
async def open_directory(bind_password_file: Path) -> AsyncIterator[Open]:
    """Opens clients on a slapd with setting changes; closes them all afterwards."""
    opened: list[LdapDirectory] = []

    async def open_(server: Slapd, **changes: Any) -> LdapDirectory:
        config = LdapBackendSettings.model_validate(
            ldap_backend(server, bind_password_file, **changes)
        )
        directory = LdapDirectory(config, SERVICE_PASSWORD)
        opened.append(directory)
        return directory

    yield open_
    for directory in opened:
        directory.close()


async def verified(directory: LdapDirectory, login: str, password: str) -> DirectoryUser:
    found = await directory.verify(login, password)
    assert isinstance(found, DirectoryUser), found
    return found


async def test_search_then_bind_finds_the_user_and_their_groups(
    slapd: Slapd, open_directory: Open
) -> None:
    """The basic promise: the right password yields the user's DN, attributes and groups."""
    directory = await open_directory(slapd, groups={"base": GROUPS})
    alice = await verified(directory, "alice", "alice-pw")
    assert alice.dn == person_dn("alice")
    assert alice.login == "alice"
    assert alice.attributes == {"departmentNumber": "eng"}
    assert set(alice.groups) == {group_dn("nats-admins"), group_dn("nats-readers")}


@pytest.mark.parametrize(
    ("login", "password", "reason"),
    [
        ("alice", "wrong", Reason.BAD_CREDENTIALS),
        ("mallory", "whatever", Reason.UNKNOWN_USER),
        ("*", "alice-pw", Reason.UNKNOWN_USER),
        ("alice)(uid=*", "alice-pw", Reason.UNKNOWN_USER),
        (person_dn("alice"), "alice-pw", Reason.UNKNOWN_USER),
    ],
    ids=["wrong-password", "unknown", "wildcard", "filter-injection", "dn-as-login"],
)
async def test_wrong_unknown_and_injected_logins_are_refused(
    slapd: Slapd, open_directory: Open, login: str, password: str, reason: Reason
) -> None:
    """Filters are escaped and DNs come only from the directory, never from the login name."""
    directory = await open_directory(slapd)
    assert await directory.verify(login, password) is reason


async def test_nested_groups_are_followed_only_when_asked(
    slapd: Slapd, open_directory: Open
) -> None:
    """carol is in ops-team, which is in nats-operators: an explicit option, not a surprise."""
    flat = await open_directory(slapd, groups={"base": GROUPS, "nested": False})
    nested = await open_directory(slapd, groups={"base": GROUPS, "nested": True})
    assert (await verified(flat, "carol", "carol-pw")).groups == (group_dn("ops-team"),)
    assert set((await verified(nested, "carol", "carol-pw")).groups) == {
        group_dn("ops-team"),
        group_dn("nats-operators"),
    }


async def test_member_of_mode_reads_the_overlay_and_can_name_groups_by_cn(
    slapd: Slapd, open_directory: Open
) -> None:
    """Directories with the memberof overlay need no group search; cn names are shorter."""
    directory = await open_directory(
        slapd, groups={"mode": "memberof", "nested": True, "names": "cn"}
    )
    assert set((await verified(directory, "carol", "carol-pw")).groups) == {
        "ops-team",
        "nats-operators",
    }


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
async def test_tls_verifies_the_servers_certificate_against_the_ca(
    slapd: Slapd, open_directory: Open, mode: str, tmp_path: Path
) -> None:
    """Passwords only travel encrypted, to a server whose certificate the CA vouches for."""
    tls: dict[str, Any] = {"urls": [slapd.ldaps_url]} if mode == "ldaps" else {"start_tls": True}
    good = await open_directory(slapd, ca_file=str(slapd.tls.ca), allow_plaintext=False, **tls)
    assert (await verified(good, "alice", "alice-pw")).login == "alice"
    stranger_ca = make_tls(tmp_path / "other").ca
    bad = await open_directory(slapd, ca_file=str(stranger_ca), allow_plaintext=False, **tls)
    with pytest.raises(BackendUnavailableError):
        await bad.verify("alice", "alice-pw")


async def test_a_refused_service_account_fails_closed(slapd: Slapd, open_directory: Open) -> None:
    """A wrong bind password is an outage of the backend, not a wrong user password."""
    directory = await open_directory(slapd)
    directory._bind_password = "not-the-service-password"
    with pytest.raises(BackendUnavailableError, match="service account"):
        await directory.verify("alice", "alice-pw")


async def _timed(call: Awaitable[T]) -> tuple[T | BaseException, float]:
    started = time.perf_counter()
    try:
        result: T | BaseException = await call
    except BackendUnavailableError as error:
        result = error
    return result, time.perf_counter() - started


async def test_a_stopped_directory_fails_closed_at_once_and_recovers_by_itself(
    own_slapd: Slapd, open_directory: Open
) -> None:
    """Outage: a distinct fault, no waiting; after a restart the next login works again."""
    directory = await open_directory(own_slapd)
    await verified(directory, "alice", "alice-pw")
    own_slapd.stop()
    result, seconds = await _timed(directory.verify("alice", "alice-pw"))
    assert isinstance(result, BackendUnavailableError)
    assert seconds < 0.5
    own_slapd.start()
    await verified(directory, "alice", "alice-pw")  # pooled connections died: no error shown


async def test_a_frozen_directory_times_out_well_under_the_auth_timeout(
    own_slapd: Slapd, open_directory: Open
) -> None:
    """A hung server must cost each login at most the deadline, then recover when it wakes."""
    directory = await open_directory(own_slapd, timeout="300ms", deadline="800ms")
    await verified(directory, "alice", "alice-pw")
    own_slapd.pause()
    try:
        results = await asyncio.gather(
            *(_timed(directory.verify("bob", "bob-pw")) for _ in range(6))
        )
    finally:
        own_slapd.resume()
    assert all(isinstance(result, BackendUnavailableError) for result, _ in results)
    assert max(seconds for _, seconds in results) < 1.2
    await asyncio.sleep(0.2)
    await verified(directory, "bob", "bob-pw")


async def test_logins_run_in_a_bounded_pool_and_never_block_the_event_loop(
    own_slapd: Slapd, open_directory: Open
) -> None:
    """Many logins against a hung directory: the loop keeps ticking, threads stay bounded."""
    before = set(threading.enumerate())
    directory = await open_directory(own_slapd, pool_size=2, timeout="300ms", deadline="1s")
    await verified(directory, "alice", "alice-pw")
    lag = 0.0

    async def tick() -> None:
        nonlocal lag
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(0.01)
            lag = max(lag, loop.time() - started - 0.01)

    ticker = asyncio.create_task(tick())
    own_slapd.pause()
    try:
        await asyncio.gather(*(_timed(directory.verify("bob", "bob-pw")) for _ in range(20)))
    finally:
        own_slapd.resume()
        ticker.cancel()
    threads = [t for t in set(threading.enumerate()) - before if t.name.startswith("ldap")]
    assert 1 <= len(threads) <= 2
    assert lag < 0.1


def _all_binds(server: Slapd) -> int:
    time.sleep(0.05)  # slapd writes the stats line right after answering
    return server.log_file.read_text(errors="replace").count(" BIND dn=")


async def test_an_unknown_user_costs_the_directory_one_bind_like_a_wrong_password(
    slapd: Slapd, open_directory: Open
) -> None:
    """Search, then one bind, in both paths: the unknown user's bind is a DN that does not
    exist, which the directory refuses like a wrong password."""
    directory = await open_directory(slapd)
    await verified(directory, "bob", "bob-pw")  # both pools connected and bound
    counts = {}
    for login in ("bob", "mallory"):
        before = _all_binds(slapd)
        await directory.verify(login, "wrong")
        counts[login] = _all_binds(slapd) - before
    assert counts == {"bob": 1, "mallory": 1}


async def test_an_ldaps_directory_that_never_completes_the_handshake_fails_closed(
    open_directory: Open, slapd: Slapd, tmp_path: Path
) -> None:
    """libldap (GnuTLS) spins past its network timeout in an ldaps:// handshake; the service
    tries the handshake itself first (the kernel accepts, nobody answers) and refuses."""
    import socket  # noqa: PLC0415 - only this test listens

    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        directory = await open_directory(slapd, urls=[f"ldaps://127.0.0.1:{port}"])
        with pytest.raises(BackendUnavailableError, match="TLS handshake"):
            await directory.verify("alice", "alice-pw")
