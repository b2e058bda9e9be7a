"""The settings tree in both modes: each mode's requirements, one precise line per problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from callout.errors import ConfigError
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.settings import Mode, load_settings

APP = KeyPair.generate(KeyRole.ACCOUNT).public_key
AUTH = KeyPair.generate(KeyRole.ACCOUNT).public_key
SYS = KeyPair.generate(KeyRole.ACCOUNT).public_key
SK = KeyPair.generate(KeyRole.ACCOUNT).public_key


def _operator(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "mode": "operator",
        "nats": {"creds_file": "/etc/callout/auth.creds"},
        "system_account": SYS,
        "operator": {
            "callout_account": {"public_key": AUTH, "signing_seed_file": "/k/auth.nk"},
            "accounts": {"APP": {"public_key": APP, "signing_seed_file": "/k/app.nk"}},
        },
    }
    values.update(changes)
    return values


def _error(**values: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, **values)
    return str(caught.value)


def test_config_mode_is_unchanged() -> None:
    """Existing config-mode files keep working as they are."""
    settings = load_settings(None, keys={"issuer_seed_file": "/k/i.nk"}, accounts=["APP"])
    assert settings.mode is Mode.CONFIG
    assert settings.operator is None


def test_config_mode_names_what_it_misses() -> None:
    """Each missing piece on its own line with its key."""
    message = _error()
    assert "keys.issuer_seed_file: config mode needs the auth_callout issuer seed" in message
    assert "accounts: config mode needs the account names" in message
    assert "Value error" not in message


def test_an_operator_section_without_operator_mode_is_refused() -> None:
    """A half-switched file must not silently run in config mode."""
    operator = _operator()["operator"]
    message = _error(keys={"issuer_seed_file": "/k/i.nk"}, accounts=["APP"], operator=operator)
    assert "operator: this section needs mode: operator" in message


def test_operator_mode_loads_with_accounts_by_name() -> None:
    """Policies name accounts; the settings map each name to its keys."""
    settings = load_settings(None, **_operator())
    assert settings.operator is not None
    assert settings.operator.accounts["APP"].public_key == APP
    assert not settings.operator.accounts["APP"].scoped


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"system_account": None}, "system_account: operator mode needs the system account's"),
        ({"system_account": "SYS"}, "system_account: operator mode needs the system account's"),
        ({"nats": {}}, "nats.creds_file: operator mode needs the creds"),
        ({"accounts": ["APP"]}, "accounts: config mode only"),
        ({"keys": {"issuer_seed_file": "/k/i.nk"}}, "keys.issuer_seed_file: config mode only"),
        ({"operator": None}, "operator: operator mode needs this section"),
    ],
    ids=["no-sys", "sys-by-name", "no-creds", "top-accounts", "issuer", "no-section"],
)
def test_operator_mode_requirements(changes: dict[str, Any], expected: str) -> None:
    """What cannot work in operator mode is refused before anything starts."""
    assert expected in _error(**_operator(**changes))


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        ({"public_key": "APP"}, "public_key: not an account public key"),
        ({"public_key": APP, "signing_keys": [APP]}, "must not repeat public_key"),
        ({"public_key": APP, "signing_keys": [SK, SK]}, "lists a key twice"),
        ({"public_key": APP, "scoped": True}, "scoped: true needs signing_keys"),
        ({"public_key": APP}, "signing_seed_file: Field required"),
    ],
    ids=["bad-key", "account-key-as-signing-key", "duplicate", "scoped-account-key", "no-seed"],
)
def test_account_entries_are_checked(account: dict[str, Any], expected: str) -> None:
    """A target account without a signing seed, or with inconsistent keys, is refused."""
    entry = {"signing_seed_file": "/k/app.nk", **account}
    if expected.startswith("signing_seed_file"):
        entry.pop("signing_seed_file")
    values = _operator()
    values["operator"]["accounts"]["APP"] = entry
    message = _error(**values)
    assert expected in message
    assert "operator.accounts.APP" in message


def test_two_names_for_one_account_are_refused() -> None:
    """One key, two names would let a policy reach an account under a name nobody guards."""
    values = _operator()
    values["operator"]["accounts"]["ALIAS"] = {"public_key": APP, "signing_seed_file": "/k/a.nk"}
    assert "accounts 'APP' and 'ALIAS' have the same public_key" in _error(**values)


def test_env_variables_still_override_in_operator_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Containers set CALLOUT_* on top of the file, in both modes."""
    monkeypatch.setenv("CALLOUT_NATS__CREDS_FILE", "/run/secrets/auth.creds")
    values = _operator()
    values["nats"] = {"creds_file": "/etc/callout/file.creds"}
    path = tmp_path / "callout.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    settings = load_settings(path)
    assert settings.nats.creds_file == Path("/run/secrets/auth.creds")


def test_a_throttle_limit_finer_than_a_bucket_can_count_is_refused() -> None:
    """A limit so high that one attempt adds less to its bucket than a wall-clock float
    resolves would count nothing (the throttle open): refused, naming the key and the most
    that can be counted; the same limit with the throttle off is accepted."""
    base = {"keys": {"issuer_seed_file": "/k/i.nk"}, "accounts": ["APP"]}
    message = _error(**base, throttle={"max_failures_per_ip": 10**9})
    assert "throttle: max_failures_per_ip: 1000000000 failures per 60 s window" in message
    assert "at most window x 100,000 = 6000000" in message
    assert load_settings(None, **base, throttle={"max_failures_per_ip": 6_000_000})
    off = load_settings(None, **base, throttle={"enabled": False, "max_failures_per_ip": 10**9})
    assert off.throttle.max_failures_per_ip == 10**9
