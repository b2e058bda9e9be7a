"""One duration grammar for the settings and the policy, and where the two differ."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from callout.errors import ConfigError, PolicyError
from callout.policy import load_policy
from callout.policy.fields import DurationWithUnit
from callout.settings import Seconds, load_settings
from callout.settings.durations import MAX_SECONDS, PATTERN, parse_seconds
from tests.unit.policy.helpers import ALICE_HASH, HEADER, write

SETTING = TypeAdapter(Seconds)
POLICY = TypeAdapter(DurationWithUnit)
BASE = {"keys": {"issuer_seed_file": "/k/i.nk"}, "accounts": ["APP"]}


def _policy_problem(value: object) -> str:
    with pytest.raises(ValidationError) as caught:
        POLICY.validate_python(value)
    return caught.value.errors()[0]["msg"]


def _setting_problem(value: object) -> str:
    with pytest.raises(ValidationError) as caught:
        SETTING.validate_python(value)
    return caught.value.errors()[0]["msg"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1d2h3m4s5ms", 93784.005),
        (" 5 s ", 5.0),
        ("1h 30m", 5400.0),
    ],
)
def test_both_places_read_a_number_with_a_unit_alike(text: str, seconds: float) -> None:
    """A duration copied from a policy into the settings (or back) means the same time."""
    assert SETTING.validate_python(text) == pytest.approx(seconds)
    assert POLICY.validate_python(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize(("value", "seconds"), [(90, 90.0), ("90", 90.0), (0.25, 0.25), (0, 0.0)])
def test_settings_take_a_bare_number_as_seconds(value: object, seconds: float) -> None:
    """Environment variables and existing files write `connect_timeout: 2`."""
    assert SETTING.validate_python(value) == seconds


@pytest.mark.parametrize("value", [600, "600", 1.5])
def test_the_policy_wants_a_unit(value: object) -> None:
    """`expiry: 600` could be seconds, minutes or a JWT's nanoseconds: the policy asks."""
    message = _policy_problem(value)
    assert "expected a duration" in message
    assert "a bare number needs a unit here" in message


@pytest.mark.parametrize("value", ["0s", "0ms", "0h0m", "0.0000001s"])
def test_the_policy_refuses_zero_and_settings_take_it(value: str) -> None:
    """A user JWT that expires at once is a mistake; `ttl: 0` in the settings means off."""
    assert "longer than zero" in _policy_problem(value)
    assert SETTING.validate_python(value) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("value", [-5, -0.5, "-5", "-5s", "-1h30m"])
def test_a_negative_duration_is_refused(value: object) -> None:
    """A negative timeout or lifetime has no meaning; the message says so plainly."""
    assert _setting_problem(value) == "Value error, a duration cannot be negative"
    if isinstance(value, str) and value[-1].isalpha():
        assert "cannot be negative" in _policy_problem(value)


@pytest.mark.parametrize("value", ["36501d", "9" * 400 + "s", 10**400, math.inf, "876001h"])
def test_an_overlong_duration_is_refused(value: object) -> None:
    """No overflow (timedelta raises past 999999999 days; floats become inf): a clear bound."""
    assert "at most 36500d" in _setting_problem(value)
    if isinstance(value, str):
        assert "at most 36500d" in _policy_problem(value)


def test_the_bound_itself_is_accepted() -> None:
    assert SETTING.validate_python("36500d") == MAX_SECONDS
    assert POLICY.validate_python("36500d") == timedelta(days=36500)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "s",
        "1h30",
        "10 minutes",
        "1e3s",
        ".5s",
        "1.s",
        "1w",
        "ten",
        "\uff11s",  # a full-width digit: float() would take it, the grammar does not
        "\u0663s",  # an Arabic-Indic digit
        math.nan,
        True,
        None,
        [1],
    ],
)
def test_garbage_is_refused_with_what_a_duration_looks_like(value: object) -> None:
    """Every refusal shows the accepted forms, so the fix is obvious."""
    assert "expected a duration: a number of seconds (90, 0.25) or" in _setting_problem(value)
    assert "expected a duration: a number with a unit such as" in _policy_problem(value)


@pytest.mark.parametrize("value", ["30m1h", "1m1m", "5s1ms2s"])
def test_units_go_largest_first_each_once(value: str) -> None:
    """`30m1h` is almost always a typo; one way to write a duration."""
    assert "largest first, each once" in _setting_problem(value)
    assert "largest first, each once" in _policy_problem(value)


def test_a_message_never_repeats_the_value() -> None:
    """A secret pasted into a duration key must not reach a log through the error."""
    for problem in (_setting_problem("hunter2hunter2"), _policy_problem("hunter2hunter2")):
        assert "hunter2" not in problem


def test_parse_seconds_is_the_one_grammar() -> None:
    assert parse_seconds("1h30m", bare_seconds=False) == 5400.0
    with pytest.raises(ValueError, match="a bare number needs a unit"):
        parse_seconds("90", bare_seconds=False)


def test_settings_from_the_environment_take_the_unit_forms() -> None:
    """`CALLOUT_SERVICE__DRAIN_TIMEOUT=1m30s` works like `90`."""
    env = {"CALLOUT_SERVICE__DRAIN_TIMEOUT": "1m30s", "CALLOUT_THROTTLE__WINDOW": "90"}
    settings = load_settings(None, environ=env, **BASE)
    assert settings.service.drain_timeout == 90.0
    assert settings.throttle.window == 90.0


def test_a_bad_duration_in_a_file_names_line_key_and_forms(tmp_path: Path) -> None:
    path = tmp_path / "callout.yaml"
    path.write_text("accounts: [APP]\nservice:\n  drain_timeout: 30m1h\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={}, keys={"issuer_seed_file": "/k/i.nk"})
    assert f"{path}:3: service.drain_timeout: write the units of a duration largest first" in str(
        caught.value
    )


def test_a_bad_duration_in_a_variable_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={"CALLOUT_NATS__CONNECT_TIMEOUT": "soon"}, **BASE)
    assert "CALLOUT_NATS__CONNECT_TIMEOUT: nats.connect_timeout: expected a duration" in str(
        caught.value
    )


def test_a_policy_takes_compound_and_fractional_durations(tmp_path: Path) -> None:
    body = "    max_expiry: 1h30m\n    expiry: 1.5h\n"
    user = HEADER + "users:\n  alice:\n    password: '" + ALICE_HASH + "'\n" + body
    load_policy(write(tmp_path, p_yaml=user))


def test_a_bare_number_in_a_policy_file_is_an_error_at_its_line(tmp_path: Path) -> None:
    user = HEADER + "users:\n  alice:\n    password: '" + ALICE_HASH + "'\n    expiry: 600\n"
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, p_yaml=user))
    [issue] = caught.value.issues
    assert issue.path.startswith("users.alice.expiry")
    assert "a bare number needs a unit here" in issue.message


@pytest.mark.parametrize(
    "text", ["250ms", "1.5s", "1h30m", "2d", "1d2h3m4s5ms", "90", "1h30", "1e3s", "10 minutes", ""]
)
def test_the_schema_pattern_agrees_with_the_parser(text: str) -> None:
    """Editors validate policies against policies/schema.json: they flag what the loader refuses
    (the order of units and the bounds are the loader's alone)."""
    try:
        POLICY.validate_python(text)
    except ValidationError:
        parsed = False
    else:
        parsed = True
    assert bool(re.fullmatch(PATTERN, text)) == parsed
