"""`policy explain` shows what each intent compiles to, and the subjects a login gets."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from callout.cli import policy as cli
from callout.policy.intents import inbox_prefix
from tests.unit.policy.helpers import ALICE_HASH, ALICE_PASSWORD, HEADER, write

_POLICY = (
    HEADER
    + """\
roles:
  profile:
    kv: [{bucket: profiles, read: true, keys: "users.{{user.name}}.>"}]
    service: [{name: echo, call: true}]
    private_inbox: true
users:
  alice:
    password: "HASH"
    roles: [profile]
"""
).replace("HASH", ALICE_HASH)


def _explain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *flags: str, policy: str = _POLICY
) -> int:
    directory = tmp_path / "p"
    directory.mkdir(parents=True)
    write(directory, p_yaml=policy)
    monkeypatch.setattr("sys.stdin", io.StringIO(ALICE_PASSWORD + "\n"))
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["policy", "explain", str(directory), "--user", "alice", *flags])
    code: int = args.func(args)
    return code


def test_explain_lists_each_intents_subjects_under_its_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reviewer sees the exact subjects behind "read my profile keys", templates unfilled."""
    assert _explain(tmp_path, monkeypatch) == 0
    out = capsys.readouterr().out
    label = "kv profiles read keys users.{{user.name}}.>"
    assert f"{label}: publish allow $JS.API.STREAM.INFO.KV_profiles" in out
    direct = "$JS.API.DIRECT.GET.KV_profiles.$KV.profiles.users.{{user.name}}.>"
    assert f"{label}: publish allow {direct}" in out
    assert "service echo call: publish allow $SRV.PING.echo" in out
    assert "private_inbox: subscribe allow {{user.inbox}}.>" in out


def test_explain_claims_carry_the_filled_subjects_and_the_private_inbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The claims show alice's own keys and her inbox prefix, which her client must use."""
    assert _explain(tmp_path, monkeypatch, "--json") == 0
    claims = json.loads(capsys.readouterr().out)["claims"]["nats"]
    assert "$JS.API.DIRECT.GET.KV_profiles.$KV.profiles.users.alice.>" in claims["pub"]["allow"]
    assert "echo.>" in claims["pub"]["allow"]
    assert claims["sub"]["allow"] == [f"{inbox_prefix('static', 'alice')}.>"]
    assert "resp" not in claims


def test_explain_shows_the_client_setting_for_the_private_inbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reviewer (or the client's owner) gets the exact prefix to configure, per client:
    with the default ``_INBOX`` every request of this identity would time out."""
    prefix = inbox_prefix("static", "alice")
    assert _explain(tmp_path, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "client settings (private_inbox: replies arrive only on this inbox prefix):" in out
    assert f'  nats-py: await nats.connect(url, ..., inbox_prefix="{prefix}")' in out
    assert f'  nats.go: nats.Connect(url, ..., nats.CustomInboxPrefix("{prefix}"))' in out
    assert f'  nats.js: connect({{ servers, ..., inboxPrefix: "{prefix}" }})' in out
    assert _explain(tmp_path / "json", monkeypatch, "--json") == 0
    assert json.loads(capsys.readouterr().out)["inbox_prefix"] == prefix


def test_explain_shows_no_inbox_setting_without_a_private_inbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only holders of ``private_inbox`` must change their client; others keep ``_INBOX``."""
    shared = _POLICY.replace("    private_inbox: true\n", "    subscribe: {allow: [_INBOX.>]}\n")
    assert _explain(tmp_path, monkeypatch, "--json", policy=shared) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["claims"]["nats"]["sub"]["allow"] == ["_INBOX.>"]
    assert result["inbox_prefix"] is None
    assert _explain(tmp_path / "text", monkeypatch, policy=shared) == 0
    assert "client settings" not in capsys.readouterr().out


_GROUPS = (
    HEADER
    + """\
roles:
  replies: {private_inbox: true}
  watch-all: {subscribe: {allow: [">"]}}
groups:
  callers: {roles: [replies]}
  watchers: {roles: [watch-all]}
"""
)


def test_explain_shows_why_merged_groups_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reviewer can try a directory user's group combination offline and read the conflict:
    a private inbox from one group, every subject from the other."""
    write(tmp_path, p_yaml=_GROUPS)
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    who = ["--identity", "carol", "--backend", "ldap", "--group", "callers", "--group", "watchers"]
    args = parser.parse_args(["policy", "explain", str(tmp_path), *who, "--exit-code"])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert (
        "decision: DENY (conflicting_grants: private_inbox of group 'callers' and subscribe"
        " allow '>' of group 'watchers': together they reach other identities' inboxes)"
    ) in out
    assert "client settings" not in out
