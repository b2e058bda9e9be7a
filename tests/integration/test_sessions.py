"""Live sessions against a real nats-server, in config mode and in operator mode: grants
recorded from our decisions and the server's connect events, revoked (kicked) when a reload
decides them differently. Config mode logs the system account in as user ``sys`` of a SYS
account; operator mode with a user JWT of the SYS account, and its grants are JWTs signed for
the target accounts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from callout.cli import main
from callout.credentials.tokens import hmac_hash, new_token
from callout.secretfiles import write_secret
from callout.service.app import App
from callout.sessions.registry import Session
from callout.testing import captured_logs
from tests.integration.config_environment import ConfigEnvironment
from tests.integration.environments import Environment, fresh
from tests.integration.operator_environment import OperatorEnvironment
from tests.integration.rawclient import raw_connect
from tests.integration.users import PASSWORDS, write_policy
from tests.reconnects import LEAKED_RECONNECT_SOCKET, collect_leaked_sockets

# Both with AUTH → APP, OPS and a system-account login for the service's sessions.
SESSION_ENVIRONMENTS: tuple[Environment, ...] = (
    ConfigEnvironment("config", system_user="sys"),
    OperatorEnvironment("operator", default_sentinel=True),
)


@pytest.fixture(scope="module", params=SESSION_ENVIRONMENTS, ids=lambda env: env.name)
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Environment]:
    running = fresh(request.param).start(tmp_path_factory.mktemp(f"sessions-{request.param.name}"))
    try:
        yield running
    finally:
        running.stop()


def _sessions_settings(env: Environment, **overrides: Any) -> dict[str, Any]:
    return {"enabled": True, "system": env.sessions_login(), **overrides}


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "policies", "APP", "OPS")


@pytest.fixture
async def app_factory(env: Environment, policy_dir: Path) -> AsyncIterator[Callable[..., Any]]:
    apps: list[App] = []

    async def start(*, service: dict[str, Any] | None = None, **sessions: Any) -> App:
        settings = env.settings(
            policy={"directory": policy_dir},
            sessions=_sessions_settings(env, **sessions),
            reload={"watch": False},
            **(service or {}),
        )
        app = App(settings)
        apps.append(app)
        await app.start()
        return app

    yield start
    for app in apps:
        await app.stop()


_OPENED: list[Client] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    """Clients a test opened are closed in the test's loop, kicked or not."""
    yield
    while _OPENED:
        await _OPENED.pop().close()


async def login(env: Environment, user: str, **options: Any) -> Client:
    client = await env.connect(user=user, password=PASSWORDS[user], **options)
    _OPENED.append(client)
    return client


async def until(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Wait (bounded) until ``check()`` holds."""
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {seconds}s: {what}")


async def refused(env: Environment, **fields: str) -> bool:
    """Whether the server refuses this login (raw protocol: nats-py leaks the socket of a
    refused connect)."""
    _, line = await raw_connect(env.server.port, env.raw_fields(fields))
    return "Authorization Violation" in line


def _pass(user: str) -> dict[str, str]:
    return {"user": user, "pass": PASSWORDS[user]}


async def user_info(client: Client) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (await client.request("$SYS.REQ.USER.INFO", b"", timeout=2)).data
    )["data"]
    return data


def live(app: App, principal: str) -> list[Session]:
    assert app.sessions is not None
    return [s for s in app.sessions.tracker.registry.select(principal=principal) if s.connected]


def edit_policy(directory: Path, old: str, new: str) -> None:
    path = directory / "policy.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def remove_user(directory: Path, name: str) -> None:
    """Drop the user ``name`` (its three lines) from the test policy."""
    path = directory / "policy.yaml"
    lines = path.read_text().splitlines()
    start = lines.index(f"  {name}:")
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    path.write_text("\n".join(lines[:start] + lines[end:]) + "\n")


def metric(app: App, name: str, labels: str = "", missing: float | None = None) -> float:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in app.metrics.render().decode().splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    if missing is not None:  # a labelled series that has not been counted yet
        return missing
    raise AssertionError(f"no series {prefix!r}")


async def test_a_grant_is_recorded_and_leaves_with_the_connection(
    app_factory: Callable[..., Any], env: Environment
) -> None:
    """The registry follows the real connection: the connect event confirms, the disconnect
    event removes."""
    app = await app_factory()
    client = await login(env, "alice")
    await until(lambda: len(live(app, "alice")) == 1, "alice's session confirmed")
    session = live(app, "alice")[0]
    assert session.account == "APP"
    assert session.identity.backend == "static"
    assert session.request.connect.password == ""  # the registry keeps no secret
    await client.close()
    await until(lambda: not app.sessions.tracker.registry.select(principal="alice"), "removed")


async def test_a_user_removed_from_the_policy_is_kicked_and_cannot_come_back(
    app_factory: Callable[..., Any], env: Environment, policy_dir: Path
) -> None:
    """Deleting a user ends their live connection at the reload, not at the JWT's expiry."""
    app = await app_factory()
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    client = await login(env, "alice", closed_cb=on_closed)
    assert (await user_info(client))["account"] == env.main_account
    bob_like = await login(env, "bob")
    await until(lambda: len(live(app, "alice")) == 1, "alice connected")
    remove_user(policy_dir, "alice")
    assert app.reload()
    await asyncio.wait_for(closed.wait(), timeout=5)
    assert client.is_closed
    assert bob_like.is_connected  # an unchanged identity keeps its session
    assert await refused(env, **_pass("alice"))
    assert metric(app, "callout_session_revocations_total", 'result="kicked"') == 1
    await bob_like.close()


async def test_a_narrowed_role_reconnects_with_the_narrower_permissions(
    app_factory: Callable[..., Any], env: Environment, policy_dir: Path
) -> None:
    """After the kick the client's own reconnect gets the new decision (seen on the wire)."""
    app = await app_factory()
    reconnected = asyncio.Event()

    async def on_reconnected() -> None:
        reconnected.set()

    client = await env.connect(
        user="alice",
        password=PASSWORDS["alice"],
        reconnected_cb=on_reconnected,
        allow_reconnect=True,
        reconnect_time_wait=0.1,
        max_reconnect_attempts=20,
    )
    try:
        assert "user.alice.>" in (await user_info(client))["permissions"]["publish"]["allow"]
        await until(lambda: len(live(app, "alice")) == 1, "alice connected")
        edit_policy(policy_dir, "roles: [app, private]", "roles: [app]")
        assert app.reload()
        await asyncio.wait_for(reconnected.wait(), timeout=10)
        allowed = (await user_info(client))["permissions"]["publish"]["allow"]
        assert "user.alice.>" not in allowed
        assert "app.>" in allowed
    finally:
        await client.close()


async def test_the_cap_holds_back_a_reload_that_would_kick_too_many(
    app_factory: Callable[..., Any], env: Environment, policy_dir: Path
) -> None:
    """A bad push must not disconnect everyone: past the cap nothing is kicked, loudly."""
    app = await app_factory(max_revocations_per_reload=1)
    clients = [await login(env, name) for name in ("alice", "bob")]
    await until(lambda: len(live(app, "alice")) + len(live(app, "bob")) == 2, "both connected")
    remove_user(policy_dir, "alice")
    remove_user(policy_dir, "bob")
    with captured_logs() as logs:
        assert app.reload()
        await until(
            lambda: metric(app, "callout_session_revocations_held_back_total") == 2, "held back"
        )
    assert "revocation_held_back" in logs.getvalue()
    await asyncio.sleep(0.3)  # a kick, if one had been sent, would have landed by now
    assert all(client.is_connected for client in clients)
    assert metric(app, "callout_session_revocations_total", 'result="kicked"') == 0
    for client in clients:
        await client.close()


async def test_report_mode_names_the_revocations_and_kicks_no_one(
    app_factory: Callable[..., Any], env: Environment, policy_dir: Path
) -> None:
    """``revocation: report`` lets an operator see what a policy push would end first."""
    app = await app_factory(revocation="report")
    client = await login(env, "alice")
    await until(lambda: len(live(app, "alice")) == 1, "alice connected")
    remove_user(policy_dir, "alice")
    with captured_logs() as logs:
        assert app.reload()
        await until(
            lambda: metric(app, "callout_session_revocations_total", 'result="reported"') == 1,
            "reported",
        )
    assert '"principal": "alice"' in logs.getvalue() or '"principal":"alice"' in logs.getvalue()
    assert client.is_connected
    await client.close()


PEPPER = "a-pepper-for-session-tests-0123456789abcdef"
TOKEN = new_token("nac", "ci-deploy")


async def test_a_deleted_tokens_connections_are_kicked(
    app_factory: Callable[..., Any],
    env: Environment,
    policy_dir: Path,
    tmp_path: Path,
) -> None:
    """Deleting a token from the policy ends the connections logged in with it."""
    pepper = tmp_path / "pepper"
    write_secret(pepper, PEPPER)
    policy = policy_dir / "policy.yaml"
    entry = f"""
tokens:
  ci-deploy:
    hash: "{hmac_hash(PEPPER.encode(), TOKEN.text)}"
    owner: team-ci@example.org
    roles: [app]
"""
    policy.write_text(policy.read_text() + entry)
    backends = [{"type": "token", "pepper_file": str(pepper)}, {"type": "static"}]
    app = await app_factory(service={"backends": backends})
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    client = await env.connect(token=TOKEN.text, closed_cb=on_closed)
    _OPENED.append(client)
    await until(lambda: len(live(app, "ci-deploy")) == 1, "the token's session")
    policy.write_text(policy.read_text().replace(entry, "\n"))
    assert app.reload()
    await asyncio.wait_for(closed.wait(), timeout=5)
    assert client.is_closed
    assert await refused(env, auth_token=TOKEN.text)


async def test_a_grant_signed_by_a_key_the_server_does_not_know_is_reported_loudly(
    app_factory: Callable[..., Any], env: Environment, tmp_path: Path
) -> None:
    """Our audit said allow, the server said no: the rejection advisory is correlated with
    the grant and shows up as ``server_rejected_grant`` with the server's reason."""
    with env.unknown_signer(tmp_path) as (overrides, reason), captured_logs() as logs:
        app = await app_factory(service=overrides)
        assert await refused(env, **_pass("alice"))
        labels = 'reason="{}"'.format(reason.replace('"', '\\"'))
        await until(
            lambda: metric(app, "callout_server_rejections_total", labels, missing=0) == 1,
            "counted",
        )
    events = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    audit = [e for e in events if e.get("event") == "auth_decision"]
    rejected = [e for e in audit if e["reason"] == "server_rejected_grant"]
    assert len(rejected) == 1
    assert rejected[0]["principal"] == "alice"
    assert rejected[0]["decision"] == "error"
    assert fnmatchcase(rejected[0]["detail"], reason), rejected[0]["detail"]
    assert any(e.get("event") == "server_rejected_grant" for e in events)
    assert not app.sessions.tracker.registry.select(principal="alice")
    assert metric(app, "callout_sessions") == 0


def cli(env: Environment, *args: str) -> list[str]:
    """`callout sessions ...` as the operator runs it, logged in as the service user."""
    return ["sessions", *args, "--server", env.url, *env.cli_login(), "--wait", "0.5s"]


async def test_operators_list_kick_and_revoke_sessions_with_the_cli(
    app_factory: Callable[..., Any],
    env: Environment,
    policy_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`callout sessions` reaches the replica over NATS: list shows the grant, kick ends a
    connection that may come back, revoke ends it and keeps it out, across a restart."""
    app = await app_factory()
    alice = await login(env, "alice")
    bob = await login(env, "bob")
    await until(lambda: len(live(app, "alice")) + len(live(app, "bob")) == 2, "connected")

    assert await asyncio.to_thread(main, cli(env, "list", "--user", "alice", "--json")) == 0
    out = capsys.readouterr().out.splitlines()  # the service logs to the same stdout
    listed = [json.loads(line) for line in out if line.startswith('{"account"')]
    assert [(s["principal"], s["account"], s["connected"]) for s in listed] == [
        ("alice", "APP", True)
    ]

    assert await asyncio.to_thread(main, cli(env, "kick", "--user", "bob")) == 0
    assert "1 session(s) kicked" in capsys.readouterr().out
    await until(lambda: bob.is_closed, "bob kicked")
    await (await login(env, "bob")).close()  # a kick is not a ban

    revoke = cli(env, "revoke", "--user", "alice", "--for", "1h", "--note", "left")
    assert await asyncio.to_thread(main, revoke) == 0
    await until(lambda: alice.is_closed, "alice kicked")
    assert await refused(env, **_pass("alice"))
    saved = json.loads((policy_dir / "deny-list.json").read_text())
    assert [(e["kind"], e["name"], e["note"]) for e in saved["entries"]] == [
        ("user", "alice", "left")
    ]

    await app.stop()
    await app_factory()  # a new process reads the deny list back
    assert await refused(env, **_pass("alice"))


async def test_the_cli_says_when_no_replica_answers(
    env: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a sessions-enabled service the command fails with a reason, not silence."""
    assert await asyncio.to_thread(main, cli(env, "list")) == 1
    assert "no replica answered" in capsys.readouterr().err


async def test_kick_without_a_selector_is_a_usage_error(
    env: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kicking everyone by accident must not be one command away."""
    assert await asyncio.to_thread(main, cli(env, "kick")) == 2
    assert "exactly one of --user, --token, --group" in capsys.readouterr().err


# A reconnect that reaches the new server before the service has resubscribed is refused,
# and nats-py leaks the socket of a refused handshake: see tests/reconnects.py.
@LEAKED_RECONNECT_SOCKET
@pytest.mark.parametrize("kind", SESSION_ENVIRONMENTS, ids=lambda env: env.name)
async def test_the_registry_stays_consistent_across_a_server_restart(
    kind: Environment, tmp_path: Path
) -> None:
    """Connections come back with new grants from the new server; the old server's
    sessions leave with it (its shutdown event)."""
    restarted = fresh(kind).start(tmp_path)
    server = restarted.server
    app = App(restarted.settings(sessions=_sessions_settings(restarted), reload={"watch": False}))
    client: Client | None = None
    try:
        await app.start()
        client = await restarted.connect(
            user="alice",
            password=PASSWORDS["alice"],
            allow_reconnect=True,
            reconnect_time_wait=0.2,
            max_reconnect_attempts=50,
        )
        await until(lambda: len(live(app, "alice")) == 1, "alice connected")
        before = live(app, "alice")[0].server_id
        server.stop()
        server.start()
        await until(
            lambda: [s.server_id for s in live(app, "alice")] not in ([], [before]),
            "alice back on the new server",
            seconds=20,
        )
        assert app.sessions is not None
        sessions = app.sessions.tracker.registry.select(principal="alice")
        assert len(sessions) == 1
        assert sessions[0].server_id != before
    finally:
        if client is not None:
            await client.close()
        await app.stop()
        server.stop()
        collect_leaked_sockets()


async def test_the_api_answers_a_bad_request_with_its_reason(
    app_factory: Callable[..., Any], env: Environment
) -> None:
    """A request the CLI would not send still gets a clear answer, and changes nothing."""
    app = await app_factory()
    nc = await env.connect(**env.service_options())
    try:
        for subject, body, problem in (
            ("callout.sessions.revoke", b'{"kind": "user", "name": "x", "until": 1}', "until"),
            ("callout.sessions.revoke", b'{"kind": "everyone", "name": "x"}', "kind"),
            ("callout.sessions.kick", b"{}", "kick needs user, token or group"),
            ("callout.sessions.list", b"not json", "not JSON"),
        ):
            reply = await nc.request(subject, body, timeout=2)
            assert problem in json.loads(reply.data)["error"]
            assert reply.headers is not None
            assert reply.headers.get("Nats-Service-Error-Code") == "400"
    finally:
        await nc.close()
    assert app.sessions is not None
    assert app.sessions.tracker.deny_list.entries(0) == []
