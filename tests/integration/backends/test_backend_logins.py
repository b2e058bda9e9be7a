"""End to end through a real nats-server, in every environment: LDAP, API-token and OIDC
logins through the configured chain [token, oidc, ldap, static], with a real slapd and a
local JWKS; directory outages; the decision cache during reconnects."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nats
import pytest

from callout.credentials.tokens import hmac_hash, new_token
from callout.decision import Reason
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.service.app import App
from tests import counts
from tests.integration.backends.conftest import ldap_backend
from tests.integration.backends.idp import AUDIENCE, ISSUER, JwksServer, claims, mint
from tests.integration.backends.slapd import PASSWORDS, Slapd, person_dn
from tests.integration.environments import Environment
from tests.integration.rawclient import raw_connect
from tests.integration.users import PASSWORDS as STATIC_PASSWORDS
from tests.integration.users import write_policy

pytestmark = pytest.mark.integration

AUTH_VIOLATION = "Authorization Violation"
PEPPER = "a-pepper-for-tests-only-0123456789abcdef"
TOKEN = new_token("nac", "ci-deploy")

_BACKENDS_POLICY = """\
version: 1
roles:
  ldap-admin:
    publish: {{allow: ["admin.{{{{user.attr.departmentNumber}}}}.>", "$SYS.REQ.USER.INFO"]}}
    subscribe: {{allow: ["_INBOX.>"]}}
  ops:
    publish: {{allow: ["ops.>", "$SYS.REQ.USER.INFO"]}}
    subscribe: {{allow: ["_INBOX.>"]}}
  deploy:
    publish: {{allow: ["deploy.{{{{user.name}}}}.>", "$SYS.REQ.USER.INFO"]}}
    subscribe: {{allow: ["_INBOX.>"]}}
groups:
  "cn=nats-admins,ou=groups,dc=example,dc=org": {{roles: [ldap-admin]}}
  "CN=NATS-Readers, OU=Groups, DC=Example, DC=Org": {{roles: [app]}}
  "cn=nats-operators,ou=groups,dc=example,dc=org": {{roles: [ops], account: "{second}"}}
  "cn=nats-blocked,ou=groups,dc=example,dc=org": {{deny: true}}
  "idp:platform": {{roles: [ops], account: "{second}"}}
tokens:
  ci-deploy:
    hash: "{token_hash}"
    owner: team-ci@example.org
    roles: [deploy]
    expires: "2099-01-01"
"""

Start = Callable[..., Any]


async def user_info(nc: nats.NATS) -> dict[str, Any]:
    reply = await nc.request("$SYS.REQ.USER.INFO", b"", timeout=2)
    data: dict[str, Any] = json.loads(reply.data)["data"]
    return data


async def refusal(deployment: Environment, **fields: str) -> tuple[str, float]:
    """The server's answer to raw CONNECT ``fields`` (plus the sentinel, where clients need one)."""
    started = time.perf_counter()
    _, line = await raw_connect(deployment.server.port, deployment.raw_fields(fields))
    return line, time.perf_counter() - started


def secret(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def policy_dir(deployment: Environment, directory: Path) -> Path:
    """The deployment's static policy plus groups and tokens for the other backends."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(deployment.policy_dir / "policy.yaml", directory / "policy.yaml")
    text = _BACKENDS_POLICY.format(
        second=deployment.second_account_name,
        token_hash=hmac_hash(PEPPER.encode(), TOKEN.text),
    )
    (directory / "backends.yaml").write_text(text)
    return directory


@pytest.fixture
async def start_chain(
    deployment: Environment,
    slapd: Slapd,
    jwks: JwksServer,
    bind_password_file: Path,
    tmp_path: Path,
) -> AsyncIterator[Start]:
    """Starts a service with the chain [token, oidc, ldap, static]; ``directory`` picks the
    slapd (the shared one, over StartTLS, unless a test brings its own)."""
    apps: list[App] = []
    policies = policy_dir(deployment, tmp_path / "policies")
    pepper = secret(tmp_path / "pepper", PEPPER)

    async def start(directory: Slapd | None = None, **ldap: Any) -> App:
        server = directory or slapd
        tls = {"start_tls": True, "allow_plaintext": False, "ca_file": str(server.tls.ca)}
        backends = [
            {"type": "token", "pepper_file": str(pepper)},
            {
                "type": "oidc",
                "issuers": [
                    {
                        "issuer": ISSUER,
                        "audience": [AUDIENCE],
                        "jwks_url": jwks.url,
                        "group_prefix": "idp:",
                        "require": {"sub": {"glob": "svc-*"}},
                    }
                ],
            },
            ldap_backend(server, bind_password_file, **{**tls, **ldap}),
            {"type": "static"},
        ]
        app = App(deployment.settings(backends=backends, policy={"directory": policies}))
        await app.start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        await app.stop()


def decisions(app: App) -> dict[Reason, int]:
    return dict(counts.decisions(app.metrics))


async def test_a_directory_user_lands_where_their_groups_say(
    deployment: Environment, start_chain: Start
) -> None:
    """LDAP user/password: groups (DN spelled any way) give roles; attributes fill templates."""
    await start_chain()
    nc = await deployment.connect(user="alice", password=PASSWORDS["alice"])
    try:
        info = await user_info(nc)
    finally:
        await nc.close()
    assert info["account"] == deployment.main_account
    assert info["user"] == "alice"
    assert "admin.eng.>" in info["permissions"]["publish"]["allow"]
    assert "app.>" in info["permissions"]["publish"]["allow"]


async def test_a_nested_group_maps_to_its_own_account(
    deployment: Environment, start_chain: Start
) -> None:
    """carol is in ops-team, which is in nats-operators: that group's account and roles."""
    await start_chain()
    nc = await deployment.connect(user="carol", password=PASSWORDS["carol"])
    try:
        info = await user_info(nc)
    finally:
        await nc.close()
    assert info["account"] == deployment.second_account
    # USER.INFO does not keep the JWT's order of a permission list.
    assert sorted(info["permissions"]["publish"]["allow"]) == ["$SYS.REQ.USER.INFO", "ops.>"]


async def test_directory_refusals_have_precise_reasons(
    deployment: Environment, start_chain: Start, slapd: Slapd
) -> None:
    """Wrong password, a deny group, an empty password (refused without asking slapd)."""
    app = await start_chain()
    binds = slapd.binds(person_dn("alice"))
    for user, password in (("alice", "wrong"), ("dave", PASSWORDS["dave"]), ("alice", "")):
        line, _ = await refusal(deployment, user=user, **{"pass": password})
        assert AUTH_VIOLATION in line
    assert slapd.binds(person_dn("alice")) == binds + 1  # the wrong password; not the empty one
    assert decisions(app)[Reason.BAD_CREDENTIALS] == 2
    assert decisions(app)[Reason.EXPLICIT_DENY] == 1


async def test_static_users_still_log_in_behind_the_directory(
    deployment: Environment, start_chain: Start
) -> None:
    """LDAP passes names it does not know on; the static backend after it decides them."""
    await start_chain()
    nc = await deployment.connect(user="local-only", password=STATIC_PASSWORDS["local-only"])
    await nc.close()
    line, _ = await refusal(deployment, user="nobody", **{"pass": "x"})
    assert AUTH_VIOLATION in line


async def test_an_api_token_logs_in_as_its_id(deployment: Environment, start_chain: Start) -> None:
    """The client's token option: roles of the token entry, {{user.name}} = the token id."""
    app = await start_chain()
    nc = await deployment.connect(token=TOKEN.text)
    try:
        info = await user_info(nc)
    finally:
        await nc.close()
    assert info["account"] == deployment.main_account
    assert "deploy.ci-deploy.>" in info["permissions"]["publish"]["allow"]
    wrong = TOKEN.text[:-3] + "xyz"
    assert AUTH_VIOLATION in (await refusal(deployment, auth_token=wrong))[0]
    assert decisions(app)[Reason.BAD_CREDENTIALS] == 1


async def test_an_oidc_token_logs_in_and_is_cut_off_when_it_expires(
    deployment: Environment, start_chain: Start, jwks: JwksServer
) -> None:
    """A bearer JWT as the token: its groups pick account and roles; the issued user JWT
    expires with it, so nats-server disconnects the client then."""
    app = await start_chain()
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    token = mint(jwks.keys[0], claims("svc-platform", lifetime=2, groups=["platform"]))
    nc = await deployment.connect(token=token, closed_cb=on_closed)
    try:
        info = await user_info(nc)
        assert info["account"] == deployment.second_account
        assert info["user"] == "svc-platform"
        await asyncio.wait_for(closed.wait(), timeout=8)
    finally:
        await nc.close()
    foreign = mint(jwks.keys[0], claims(issuer="https://elsewhere.example"))
    assert AUTH_VIOLATION in (await refusal(deployment, auth_token=foreign))[0]
    assert decisions(app)[Reason.UNTRUSTED_ISSUER] == 1


async def test_a_directory_outage_fails_closed_and_recovers_by_itself(
    deployment: Environment, start_chain: Start, own_slapd: Slapd
) -> None:
    """slapd killed mid-run: new logins are refused at once (backend_unavailable), logins
    cached a moment ago still pass, and after a restart everything works without help."""
    app = await start_chain(own_slapd)
    nc = await deployment.connect(user="bob", password=PASSWORDS["bob"])
    await nc.close()
    own_slapd.kill()
    line, seconds = await refusal(deployment, user="carol", **{"pass": "carol-pw"})
    assert AUTH_VIOLATION in line
    assert seconds < 1.5  # a signed refusal, not the server's 2 s timeout
    assert decisions(app)[Reason.BACKEND_UNAVAILABLE] == 1
    nc = await deployment.connect(user="bob", password=PASSWORDS["bob"])  # cached
    await nc.close()
    own_slapd.start()
    nc = await deployment.connect(user="carol", password=PASSWORDS["carol"])
    await nc.close()


async def test_reconnects_within_the_ttl_do_not_bind_again(
    deployment: Environment, start_chain: Start, slapd: Slapd
) -> None:
    """The cache: repeated and concurrent logins of one user cost the directory one bind."""
    await start_chain()
    before = slapd.binds(person_dn("bob"))
    clients = await asyncio.gather(
        *(deployment.connect(user="bob", password=PASSWORDS["bob"]) for _ in range(10))
    )
    for client in clients:
        await client.close()
    for _ in range(3):
        nc = await deployment.connect(user="bob", password=PASSWORDS["bob"])
        await nc.close()
    assert slapd.binds(person_dn("bob")) == before + 1


async def test_a_nats_restart_storm_is_served_from_the_cache(
    slapd: Slapd, bind_password_file: Path, tmp_path: Path
) -> None:
    """After nats-server restarts, every client reconnects at once; the directory sees no
    new binds for users who logged in within the TTL."""
    setup = ConfigModeSetup(tmp_path / "keys", free_port(), target_accounts=("APP",)).write()
    policies = tmp_path / "policies"
    write_policy(policies, "APP", "APP")
    (policies / "groups.yaml").write_text(
        'version: 1\ngroups:\n  "cn=nats-readers,ou=groups,dc=example,dc=org": {roles: [app]}\n'
    )
    settings = setup.settings(
        policies,
        backends=[ldap_backend(slapd, bind_password_file)],
        nats={
            "servers": [f"nats://127.0.0.1:{setup.port}"],
            "user": setup.auth_user,
            "password_file": setup.password_file,
            "reconnect_wait": "100ms",
        },
    )
    with NatsServer(setup.config_file, setup.port) as server:
        app = App(settings)
        await app.start()
        clients: list[nats.NATS] = []
        try:
            users = ["alice", "bob", "dave"]
            before = {user: slapd.binds(person_dn(user)) for user in users}
            for index in range(30):
                user = users[index % 3]
                clients.append(
                    await nats.connect(
                        server.url,
                        user=user,
                        password=PASSWORDS[user],
                        reconnect_time_wait=0.1,
                        max_reconnect_attempts=-1,
                    )
                )
            server.stop()
            server.start()
            for _ in range(100):
                if all(client.is_connected for client in clients):
                    break
                await asyncio.sleep(0.1)
            assert all(client.is_connected for client in clients)
            after = {user: slapd.binds(person_dn(user)) for user in users}
            assert after == {user: count + 1 for user, count in before.items()}
        finally:
            for client in clients:
                await client.close()
            await app.stop()
