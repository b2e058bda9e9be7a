"""`callout verify` against real nats-server processes: the happy path, and every
misconfiguration it claims to catch (README "Before going live: callout verify")."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callout.credentials.tokens import hmac_hash, new_token
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.operator_mode import OperatorModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.protocol.accounts import Authorization
from callout.protocol.nkeys import CurveKeyPair, KeyPair, Role
from callout.secretfiles import write_secret
from callout.service.app import App
from callout.settings import Settings
from callout.tools.checklist import Check, Status, passed
from callout.tools.verify import ProbeLogin, verify
from tests.integration.conftest import PASSWORDS, connect, write_policy

AUDIT = {"enabled": True, "subject": "callout.audit", "stream": "CALLOUT_AUDIT"}


@dataclass(frozen=True)
class Site:
    """One encrypted, JetStream-enabled config-mode server and what the service needs."""

    setup: ConfigModeSetup | OperatorModeSetup
    server: NatsServer
    policy_dir: Path
    directory: Path

    def settings(self, **overrides: Any) -> Settings:
        return self.setup.settings(self.policy_dir, **overrides)

    def secret(self, name: str, value: str) -> Path:
        path = self.directory / f"{secrets.token_hex(4)}-{name}"  # one file per test
        write_secret(path, value)
        return path


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


def _alice(site: Site, password: str | None = None) -> ProbeLogin:
    secret = site.secret("alice.password", password or PASSWORDS["alice"])
    return ProbeLogin(user="alice", password_file=secret)


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


async def _verify_with_service(
    site: Site, settings: Settings, login: ProbeLogin | None, expect: str | None = "allow"
) -> dict[str, Check]:
    app = App(settings)
    await app.start()
    try:
        checks = await verify(settings, login, expect=expect)
    finally:
        await app.stop()
    return _by_name(checks)


async def test_a_correct_deployment_passes_every_check_and_shows_the_permissions(
    site: Site, audit_stream: None
) -> None:
    """The checklist an operator wants to see before going live: all ok, exit 0."""
    settings = site.settings(audit={"jetstream": AUDIT})
    app = App(settings)
    await app.start()
    try:
        checks = await verify(settings, _alice(site), expect="allow")
    finally:
        await app.stop()
    found = _by_name(checks)
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
    found = await _verify_with_service(site, site.settings(), _alice(site, "wrong"), "deny")
    assert found["test login"].status is Status.OK
    assert found["test login"].detail.startswith("deny: Authorization Violation")
    assert "bad_credentials" in found["test login"].detail
    assert found["issuer"].status is Status.SKIP


async def test_a_test_login_denied_when_allow_is_expected_fails(site: Site) -> None:
    found = await _verify_with_service(site, site.settings(), _alice(site, "wrong"), "allow")
    login = found["test login"]
    assert login.status is Status.FAIL
    assert login.detail.startswith("expected allow, got deny")
    assert "bad_credentials" in login.detail
    assert "policy explain" in login.hint


async def test_a_wrong_issuer_key_is_named(site: Site) -> None:
    """The service signs with a key the server's auth_callout.issuer is not."""
    wrong = KeyPair.generate(Role.ACCOUNT)
    seed = site.secret("wrong-issuer.nk", wrong.seed)
    settings = site.settings(
        keys={"issuer_seed_file": seed, "xkey_seed_file": site.setup.xkey_seed_file}
    )
    found = await _verify_with_service(site, settings, _alice(site))
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
    found = await _verify_with_service(site, site.settings(keys=keys), _alice(site))
    xkey = found["xkey"]
    assert xkey.status is Status.FAIL
    assert xkey.detail == "the server encrypts requests to another key than keys.xkey_seed_file's"
    assert other.public_key in xkey.hint
    assert found["service answered"].status is Status.FAIL  # the service dropped it


async def test_a_missing_xkey_setting_is_named(site: Site) -> None:
    keys = {"issuer_seed_file": site.setup.issuer_seed_file}
    found = await _verify_with_service(site, site.settings(keys=keys), _alice(site))
    assert found["xkey"].status is Status.FAIL
    assert "keys.xkey_seed_file is not set" in found["xkey"].detail


async def test_a_callout_that_is_not_running_is_named(site: Site) -> None:
    """No service subscribed: nobody answers PING, the server times the login out."""
    checks = _by_name(await verify(site.settings(), _alice(site), expect="allow"))
    assert checks["callout service"].status is Status.FAIL
    assert "callout serve" in checks["callout service"].hint
    assert checks["service answered"].status is Status.FAIL
    assert "timeout" in checks["service answered"].detail
    assert checks["test login"].status is Status.FAIL


async def test_a_missing_audit_stream_is_named(site: Site) -> None:
    settings = site.settings(audit={"jetstream": {**AUDIT, "subject": "nowhere.audit"}})
    found = await _verify_with_service(site, settings, None, None)
    audit = found["audit stream"]
    assert audit.status is Status.FAIL
    assert audit.detail.startswith("no stream captures nowhere.audit")
    assert found["test login"].status is Status.SKIP


@pytest.fixture
def unlisted(tmp_path: Path) -> Iterator[ConfigModeSetup]:
    """A server whose auth_callout.auth_users does not name the service's user."""
    setup = ConfigModeSetup(tmp_path / "keys", free_port()).write()
    config = setup.server_config().replace("auth_users: [auth]", "auth_users: [nobody]")
    assert config != setup.server_config()
    setup.config_file.write_text(config, encoding="utf-8")
    with NatsServer(setup.config_file, setup.port):
        yield setup


async def test_a_service_user_missing_from_auth_users_is_named(
    unlisted: ConfigModeSetup, tmp_path: Path
) -> None:
    policy_dir = write_policy(tmp_path / "policies", "APP", "OPS")
    checks = await verify(unlisted.settings(policy_dir), None, expect=None, wait=3.0)
    login = _by_name(checks)["service login"]
    assert login.status is Status.FAIL
    assert "auth_callout.auth_users" in login.hint
    assert not passed(checks)


class _OnlyApp(OperatorModeSetup):
    """An operator set-up whose callout account JWT allows APP only, while the service (and
    its policy) also place users into OPS: the mistake `nsc edit authcallout` makes easy."""

    def _authorization(self) -> Authorization:
        allowed = (self.public_key("APP"),)
        return dataclasses.replace(super()._authorization(), allowed_accounts=allowed)


@pytest.fixture(scope="module")
def operator_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("verify-operator")
    setup = _OnlyApp(
        directory / "keys", free_port(), target_accounts=("APP", "OPS"), default_sentinel=True
    ).write()
    policy_dir = write_policy(directory / "policies", "APP", "OPS")
    with NatsServer(setup.config_file, setup.port) as server:
        yield Site(setup, server, policy_dir, directory)


async def test_operator_mode_passes_for_an_allowed_account(operator_site: Site) -> None:
    """alice lands in APP, which the callout account's allowed_accounts lists."""
    found = await _verify_with_service(
        operator_site, operator_site.settings(), _alice(operator_site)
    )
    assert all(check.status is not Status.FAIL for check in found.values()), found
    assert found["test login"].detail.startswith("allow: connected; the policy decides allowed")
    assert found["issuer"].status is Status.OK


async def test_an_account_missing_from_allowed_accounts_is_named(operator_site: Site) -> None:
    """bob lands in OPS by the policy; the server does not allow the callout to place there."""
    secret = operator_site.secret("bob.password", PASSWORDS["bob"])
    login = ProbeLogin(user="bob", password_file=secret)
    found = await _verify_with_service(operator_site, operator_site.settings(), login)
    accounts = found["accounts"]
    assert accounts.status is Status.FAIL, found
    assert "not permitted as valid account option" in accounts.detail
    assert "allowed_accounts" in accounts.hint
    assert found["test login"].status is Status.FAIL
    assert "the policy decides as expected" in found["test login"].hint


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
    found = await _verify_with_service(site, settings, login)
    assert found["test login"].status is Status.OK, found
    assert found["test login"].detail.startswith("allow: connected; the policy decides allowed")


@pytest.fixture
def other_account(tmp_path: Path) -> Iterator[Site]:
    """A server whose auth_callout.account is APP while the service's user lives in AUTH."""
    setup = ConfigModeSetup(tmp_path / "keys", free_port()).write()
    config = setup.server_config().replace("account: AUTH", "account: APP")
    assert config != setup.server_config()
    setup.config_file.write_text(config, encoding="utf-8")
    policy_dir = write_policy(tmp_path / "policies", "APP", "OPS")
    with NatsServer(setup.config_file, setup.port) as server:
        yield Site(setup, server, policy_dir, tmp_path)


async def test_a_service_user_outside_the_callout_account_is_named(other_account: Site) -> None:
    """The server publishes requests where the service does not listen."""
    found = await _verify_with_service(
        other_account, other_account.settings(), _alice(other_account)
    )
    received = found["request received"]
    assert received.status is Status.FAIL
    assert "not in the auth_callout account" in received.hint
    assert found["test login"].status is Status.FAIL


async def test_a_service_on_another_subject_is_named(site: Site) -> None:
    app = App(site.settings(nats={**_nats(site), "subject": "elsewhere.auth"}))
    await app.start()
    try:
        checks = _by_name(await verify(site.settings(), None, expect=None))
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
    found = await _verify_with_service(site, settings, None, None)
    audit = found["audit stream"]
    assert audit.status is Status.FAIL
    assert audit.detail == "callout.audit is captured by stream CALLOUT_AUDIT, not OTHER"


async def test_a_server_version_the_settings_refuse_fails(site: Site) -> None:
    settings = site.settings(server_versions={"minimum": "2.99.0"})
    found = await _verify_with_service(site, settings, _alice(site), "deny")
    version = found["server version"]
    assert version.status is Status.FAIL
    assert version.detail.startswith("nats-server 2.15.1: the service refuses its logins")
    assert "server_version_not_accepted" in found["test login"].detail


@pytest.fixture(scope="module")
def plain_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A server that sends requests in plaintext (no auth_callout.xkey)."""
    directory = tmp_path_factory.mktemp("verify-plain")
    setup = ConfigModeSetup(directory / "keys", free_port()).write()
    policy_dir = write_policy(directory / "policies", "APP", "OPS")
    with NatsServer(setup.config_file, setup.port) as server:
        yield Site(setup, server, policy_dir, directory)


async def test_an_xkey_setting_against_a_plaintext_server_is_named(plain_site: Site) -> None:
    seed = plain_site.secret("xkey.nk", CurveKeyPair.generate().seed)
    keys = {"issuer_seed_file": plain_site.setup.issuer_seed_file, "xkey_seed_file": seed}
    found = await _verify_with_service(
        plain_site, plain_site.settings(keys=keys), _alice(plain_site)
    )
    xkey = found["xkey"]
    assert xkey.status is Status.FAIL
    assert xkey.detail == "keys.xkey_seed_file is set, but the server sends plaintext requests"


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
    found = await _verify_with_service(site, settings, _alice(site))
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
        checks = _by_name(await verify(settings, _alice(site), expect="allow"))
    finally:
        await app.stop()
    assert checks["audit stream"].status is Status.OK
    event = checks["audit event"]
    assert event.status is Status.FAIL
    assert event.detail == "no audit event reached the stream after the test login (allowed)"
