"""`callout verify` against a real encrypted, JetStream-enabled nats-server: the happy path,
and every misconfiguration of the service's side it claims to catch (README "Before going
live: callout verify"); wrong server set-ups are in test_verify_setups.py."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from callout.credentials.tokens import hmac_hash, new_token
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole
from callout.service.app import App
from callout.tools.checklist import Status, passed
from callout.tools.verify import ProbeLogin, verify
from tests.integration.conftest import connect, write_policy
from tests.integration.verifysite import AUDIT, Site, alice, by_name, verify_with_service


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("verify")
    setup = ConfigModeSetup(directory / "keys", free_port(), encrypted=True, jetstream=True).write()
    policy_dir = write_policy(directory / "policies", "APP", "OPS")
    with NatsServer(setup.config_file, setup.port) as server:
        yield Site(setup, server, policy_dir, directory)


@pytest.fixture
async def audit_stream(site: Site) -> AsyncIterator[None]:
    admin = await connect(
        site.server.url, user=site.setup.auth_user, password=site.setup.auth_password
    )
    js = admin.jetstream()
    await js.add_stream(name="CALLOUT_AUDIT", subjects=["callout.audit"])
    try:
        yield
    finally:
        await js.delete_stream("CALLOUT_AUDIT")
        await admin.close()


async def test_a_correct_deployment_passes_every_check_and_shows_the_permissions(
    site: Site, audit_stream: None
) -> None:
    """The checklist an operator wants to see before going live: all ok, exit 0."""
    settings = site.settings(audit={"jetstream": AUDIT})
    app = App(settings)
    await app.start()
    try:
        checks = await verify(settings, alice(site), expect="allow")
    finally:
        await app.stop()
    found = by_name(checks)
    assert passed(checks), checks
    for name in (
        "settings and keys",
        "service login",
        "callout service",
        "audit stream",
        "request received",
        "xkey",
        "server version",
        "service answered",
        "issuer",
        "test login",
        "audit event",
    ):
        assert found[name].status is Status.OK, found[name]
    assert found["xkey"].detail == f"requests are encrypted to {site.setup.xkey.public_key}"
    assert site.setup.issuer.public_key in found["issuer"].detail
    login = found["test login"].detail
    assert login.startswith("allow: connected; the policy decides allowed into APP with")
    assert '"app.>"' in login


async def test_an_expected_deny_passes(site: Site) -> None:
    """A denied login can be the expectation (a revoked user must stay out)."""
    found = await verify_with_service(site.settings(), alice(site, "wrong"), "deny")
    assert found["test login"].status is Status.OK
    assert found["test login"].detail.startswith("deny: Authorization Violation")
    assert "bad_credentials" in found["test login"].detail
    assert found["issuer"].status is Status.SKIP


async def test_a_test_login_denied_when_allow_is_expected_fails(site: Site) -> None:
    found = await verify_with_service(site.settings(), alice(site, "wrong"), "allow")
    login = found["test login"]
    assert login.status is Status.FAIL
    assert login.detail.startswith("expected allow, got deny")
    assert "bad_credentials" in login.detail
    assert "policy explain" in login.hint


async def test_a_wrong_issuer_key_is_named(site: Site) -> None:
    """The service signs with a key the server's auth_callout.issuer is not."""
    wrong = KeyPair.generate(KeyRole.ACCOUNT)
    seed = site.secret("wrong-issuer.nk", wrong.seed)
    settings = site.settings(
        keys={"issuer_seed_file": seed, "xkey_seed_file": site.setup.xkey_seed_file}
    )
    found = await verify_with_service(settings, alice(site))
    issuer = found["issuer"]
    assert issuer.status is Status.FAIL, found
    assert wrong.public_key in issuer.hint
    assert "auth_callout.issuer" in issuer.hint
    assert found["test login"].status is Status.FAIL


async def test_a_wrong_xkey_is_named(site: Site) -> None:
    """The server encrypts to its auth_callout.xkey; the service holds another seed."""
    other = CurveKeyPair.generate()
    seed = site.secret("wrong-xkey.nk", other.seed)
    keys = {"issuer_seed_file": site.setup.issuer_seed_file, "xkey_seed_file": seed}
    found = await verify_with_service(site.settings(keys=keys), alice(site))
    xkey = found["xkey"]
    assert xkey.status is Status.FAIL
    assert xkey.detail == "the server encrypts requests to another key than keys.xkey_seed_file's"
    assert other.public_key in xkey.hint
    assert found["service answered"].status is Status.FAIL  # the service dropped it


async def test_a_missing_xkey_setting_is_named(site: Site) -> None:
    keys = {"issuer_seed_file": site.setup.issuer_seed_file}
    found = await verify_with_service(site.settings(keys=keys), alice(site))
    assert found["xkey"].status is Status.FAIL
    assert "keys.xkey_seed_file is not set" in found["xkey"].detail


async def test_a_callout_that_is_not_running_is_named(site: Site) -> None:
    """No service subscribed: nobody answers PING, the server times the login out."""
    checks = by_name(await verify(site.settings(), alice(site), expect="allow"))
    assert checks["callout service"].status is Status.FAIL
    assert "callout serve" in checks["callout service"].hint
    assert checks["service answered"].status is Status.FAIL
    assert "timeout" in checks["service answered"].detail
    assert checks["test login"].status is Status.FAIL


async def test_a_missing_audit_stream_is_named(site: Site) -> None:
    settings = site.settings(audit={"jetstream": {**AUDIT, "subject": "nowhere.audit"}})
    found = await verify_with_service(settings, None, None)
    audit = found["audit stream"]
    assert audit.status is Status.FAIL
    assert audit.detail.startswith("no stream captures nowhere.audit")
    assert found["test login"].status is Status.SKIP


async def test_a_token_test_login_is_read_from_its_file(site: Site) -> None:
    """--login-token-file: an API token through the token backend, end to end."""
    pepper_text = secrets.token_urlsafe(32)
    pepper = site.secret("pepper", pepper_text)
    token = new_token("nac", "verify-ci")
    policy = site.directory / f"token-policy-{secrets.token_hex(4)}"
    write_policy(policy, "APP", "OPS")
    with (policy / "policy.yaml").open("a", encoding="utf-8") as handle:
        handle.write(
            "tokens:\n  verify-ci:\n"
            f'    hash: "{hmac_hash(pepper_text.encode(), token.text)}"\n'
            "    owner: ops@example.org\n    roles: [app]\n    expires: '2099-01-01'\n"
        )
    backends = [{"type": "token", "pepper_file": str(pepper)}, {"type": "static"}]
    settings = site.setup.settings(policy, backends=backends)
    login = ProbeLogin(token_file=site.secret("token", token.text))
    found = await verify_with_service(settings, login)
    assert found["test login"].status is Status.OK, found
    assert found["test login"].detail.startswith("allow: connected; the policy decides allowed")


async def test_a_service_on_another_subject_is_named(site: Site) -> None:
    app = App(site.settings(nats={**_nats(site), "subject": "elsewhere.auth"}))
    await app.start()
    try:
        checks = by_name(await verify(site.settings(), None, expect=None))
    finally:
        await app.stop()
    service = checks["callout service"]
    assert service.status is Status.FAIL
    assert "elsewhere.auth" in service.detail
    assert "$SYS.REQ.USER.AUTH" in service.hint


async def test_an_audit_subject_captured_by_another_stream_is_named(
    site: Site, audit_stream: None
) -> None:
    settings = site.settings(audit={"jetstream": {**AUDIT, "stream": "OTHER"}})
    found = await verify_with_service(settings, None, None)
    audit = found["audit stream"]
    assert audit.status is Status.FAIL
    assert audit.detail == "callout.audit is captured by stream CALLOUT_AUDIT, not OTHER"


async def test_a_server_version_the_settings_refuse_fails(site: Site) -> None:
    settings = site.settings(server_versions={"minimum": "2.99.0"})
    found = await verify_with_service(settings, alice(site), "deny")
    version = found["server version"]
    assert version.status is Status.FAIL
    assert version.detail.startswith("nats-server 2.15.1: the service refuses its logins")
    assert "server_version_not_accepted" in found["test login"].detail


def _nats(site: Site) -> dict[str, Any]:
    return {
        "servers": [site.server.url],
        "user": site.setup.auth_user,
        "password_file": site.setup.password_file,
    }


async def test_a_target_account_the_server_lacks_is_named(site: Site) -> None:
    """The policy places alice into GHOST, which the service may use but the server lacks."""
    policy = write_policy(site.directory / f"ghost-{secrets.token_hex(4)}", "GHOST", "OPS")
    settings = site.setup.settings(policy, accounts=["GHOST", "OPS"])
    found = await verify_with_service(settings, alice(site))
    accounts = found["accounts"]
    assert accounts.status is Status.FAIL, found
    assert "No valid account" in accounts.detail
    assert "does not exist on the server" in accounts.hint


async def test_an_audit_event_that_never_arrives_is_named(site: Site, audit_stream: None) -> None:
    """The running service does not ship audit events, though these settings say it should."""
    app = App(site.settings())
    await app.start()
    try:
        settings = site.settings(audit={"jetstream": AUDIT})
        checks = by_name(await verify(settings, alice(site), expect="allow"))
    finally:
        await app.stop()
    assert checks["audit stream"].status is Status.OK
    event = checks["audit event"]
    assert event.status is Status.FAIL
    assert event.detail == "no audit event reached the stream after the test login (allowed)"
