"""`callout verify` against server set-ups that are wrong on the server side: the service's
user missing from auth_users or outside the callout account, an operator account missing from
allowed_accounts, an xkey against a plaintext server."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.operator_mode import OperatorModeSetup
from callout.devserver.processes import NatsServer, free_port
from callout.protocol.accounts import Authorization
from callout.protocol.nkeys import CurveKeyPair
from callout.tools.checklist import Status, passed
from callout.tools.verify import ProbeLogin, verify
from tests.integration.conftest import PASSWORDS, write_policy
from tests.integration.verifysite import Site, alice, by_name, verify_with_service


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
    login = by_name(checks)["service login"]
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
    found = await verify_with_service(operator_site.settings(), alice(operator_site))
    assert all(check.status is not Status.FAIL for check in found.values()), found
    assert found["test login"].detail.startswith("allow: connected; the policy decides allowed")
    assert found["issuer"].status is Status.OK


async def test_an_account_missing_from_allowed_accounts_is_named(operator_site: Site) -> None:
    """bob lands in OPS by the policy; the server does not allow the callout to place there."""
    secret = operator_site.secret("bob.password", PASSWORDS["bob"])
    login = ProbeLogin(user="bob", password_file=secret)
    found = await verify_with_service(operator_site.settings(), login)
    accounts = found["accounts"]
    assert accounts.status is Status.FAIL, found
    assert "not permitted as valid account option" in accounts.detail
    assert "allowed_accounts" in accounts.hint
    assert found["test login"].status is Status.FAIL
    assert "the policy decides as expected" in found["test login"].hint


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
    found = await verify_with_service(other_account.settings(), alice(other_account))
    received = found["request received"]
    assert received.status is Status.FAIL
    assert "not in the auth_callout account" in received.hint
    assert found["test login"].status is Status.FAIL


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
    found = await verify_with_service(plain_site.settings(keys=keys), alice(plain_site))
    xkey = found["xkey"]
    assert xkey.status is Status.FAIL
    assert xkey.detail == "keys.xkey_seed_file is set, but the server sends plaintext requests"
