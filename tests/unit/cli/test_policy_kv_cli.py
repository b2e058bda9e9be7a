"""`callout policy push|history|rollback` before any connection: a policy that does not check,
a directory that cannot be a bundle, flags that do not fit, and an unreachable server each get
a clear message and their exit code (the cluster tests run them against real servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callout.cli import main
from callout.devserver.processes import free_port

POLICY = "version: 1\nusers:\n  a:\n    nkey: {key}\n    account: APP\n"
NKEY = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"


def _closed() -> str:
    return f"nats://127.0.0.1:{free_port()}"  # nothing listens there


def _policies(tmp_path: Path, name: str = "p.yaml", text: str | None = None) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(POLICY.format(key=NKEY) if text is None else text)
    return directory


def test_a_broken_policy_is_refused_with_the_checker_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The push stops at the check: nothing is sent anywhere (the server is not even tried)."""
    directory = _policies(tmp_path, text="version: 1\nusers:\n  a:\n    rolez: []\n")
    code = main(["policy", "push", str(directory), "--server", _closed()])
    out = capsys.readouterr()
    assert code == 1
    assert "p.yaml:4: users.a.rolez: unknown key" in out.out
    assert "refused; nothing was pushed" in out.err
    assert "127.0.0.1" not in out.err


def test_a_file_name_a_bundle_cannot_hold_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _policies(tmp_path, name="my policy.yaml")
    code = main(["policy", "push", str(directory), "--server", _closed()])
    out = capsys.readouterr()
    assert code == 1
    assert "my policy.yaml: not a bundle file name" in out.err
    assert "nothing was pushed" in out.err


def test_an_unreachable_server_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = _closed()
    code = main(["policy", "push", str(_policies(tmp_path)), "--server", server, "--by", "t"])
    out = capsys.readouterr()
    assert code == 1
    assert f"callout policy push: bucket 'callout_policy' at {server}:" in out.err
    code = main(["policy", "history", "--server", server])
    assert code == 1
    assert (
        f"callout policy history: bucket 'callout_policy' at {server}:" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--password-file", "x"], "--password-file needs --login"),
        (["--bucket", "a.b"], "--bucket 'a.b': letters, digits"),
        (["--creds", "c.creds", "--login", "u"], "--creds or --login, not both"),
        (["--server", "nats//h:1"], "is not a NATS URL"),
    ],
)
def test_flags_that_do_not_fit_are_usage_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["policy", "history", "--server", _closed(), *flags])
    assert code == 2
    assert message in capsys.readouterr().err


def test_strict_refuses_a_policy_with_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--strict` as in `policy check`: a warning refuses the push; without it the push goes
    on to the server (unreachable here)."""
    over_broad = POLICY.format(key=NKEY) + "    publish: {allow: ['>']}\n"
    directory = _policies(tmp_path, text=over_broad)
    server = _closed()
    code = main(["policy", "push", str(directory), "--strict", "--server", server])
    out = capsys.readouterr()
    assert code == 1
    assert "warning:" in out.out
    assert "refused; nothing was pushed" in out.err
    code = main(["policy", "push", str(directory), "--server", server])
    out = capsys.readouterr()
    assert code == 1
    assert f"bucket 'callout_policy' at {server}" in out.err
