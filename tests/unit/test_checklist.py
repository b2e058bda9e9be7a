"""`callout verify`'s judgements on plain values: each misconfiguration's wording, and the
text and JSON renderings of the checklist."""

from __future__ import annotations

import json

import pytest

from callout.tools.checklist import (
    Check,
    Status,
    passed,
    render_json,
    render_text,
    server_reason,
    xkey_check,
)

KEY = "XAMHJVPKHHPYZQQM2IVWXKJH36KDDZZMSJ32QKSQBUODFX4I4HARO4GL"


@pytest.mark.parametrize(
    ("configured", "sealed", "opened", "status", "words"),
    [
        (None, False, False, Status.OK, "not encrypted"),
        (None, True, False, Status.FAIL, "keys.xkey_seed_file is not set"),
        (KEY, False, False, Status.FAIL, "sends plaintext requests"),
        (KEY, True, False, Status.FAIL, "another key"),
        (KEY, True, True, Status.OK, f"encrypted to {KEY}"),
    ],
)
def test_every_xkey_combination_has_its_own_verdict(
    configured: str | None, sealed: bool, opened: bool, status: Status, words: str
) -> None:
    check = xkey_check(configured=configured, sealed=sealed, opened=opened)
    assert check.status is status
    assert words in check.detail


def test_a_plaintext_server_is_told_which_xkey_to_add() -> None:
    check = xkey_check(configured=KEY, sealed=False, opened=False)
    assert check.hint.startswith(f"add xkey: {KEY} to the server's auth_callout")


@pytest.mark.parametrize(
    ("reason", "area"),
    [
        (
            'Wrong issuer for auth callout response on account "AUTH", expected "A1" got "A2"',
            "issuer",
        ),
        ("Auth callout signing key is unknown", "issuer"),
        ('Account "A..." not permitted as valid account option', "accounts"),
        ('No valid account "X" for auth callout response on account "AUTH"', "accounts"),
        ('Error decrypting auth callout response on account "AUTH"', "xkey"),
    ],
)
def test_server_reasons_that_name_a_setting_are_recognised(reason: str, area: str) -> None:
    found = server_reason(reason, issuer="AISSUER")
    assert found is not None
    assert found[0] == area


def test_the_issuer_hint_names_our_key_and_other_reasons_are_not_guessed() -> None:
    found = server_reason("Wrong issuer for auth callout response", issuer="AISSUER")
    assert found is not None
    assert "(AISSUER)" in found[1]
    assert (
        server_reason("Auth callout service returned an error: not authorized", issuer="A") is None
    )


def test_the_text_checklist_marks_failures_and_gives_the_verdict() -> None:
    checks = [
        Check("service login", Status.OK, "connected as auth"),
        Check("xkey", Status.FAIL, "mismatch", "fix it"),
        Check("issuer", Status.SKIP, "not checked"),
    ]
    text = render_text(checks).splitlines()
    assert text == [
        "[  ok] service login: connected as auth",
        "[FAIL] xkey: mismatch",
        "       -> fix it",
        "[skip] issuer: not checked",
        "NOT ready: fix the FAIL items",
    ]
    assert not passed(checks)


def test_warnings_and_skips_do_not_fail_the_run() -> None:
    checks = [Check("server version", Status.WARN, "old"), Check("issuer", Status.SKIP, "-")]
    assert passed(checks)
    body = json.loads(render_json(checks))
    assert body["ok"] is True
    assert body["checks"][0] == {
        "name": "server version",
        "status": "warn",
        "detail": "old",
        "hint": "",
    }


def test_in_operator_mode_an_issuer_refusal_points_at_the_signing_keys() -> None:
    """Operator mode has no auth_callout.issuer: the keys are the accounts' signing keys."""
    found = server_reason("Auth callout signing key is unknown", issuer="-", operator=True)
    assert found is not None
    assert found[0] == "issuer"
    assert "signing_keys" in found[1]
    assert "auth_callout.issuer" not in found[1]
