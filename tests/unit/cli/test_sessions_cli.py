"""`callout sessions` argument handling and an unreachable server (no NATS needed)."""

from __future__ import annotations

import pytest

from callout.cli import main
from callout.devserver.processes import free_port


def test_an_unreachable_server_fails_with_a_reason_and_does_not_hang(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """nats-py would retry the first connect forever; the command gives up and says why."""
    server = f"nats://127.0.0.1:{free_port()}"
    assert main(["sessions", "list", "--server", server, "--wait", "0.2s"]) == 1
    assert f"cannot reach {server}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["sessions", "kick", "--user", "a", "--group", "g"],
        ["sessions", "revoke", "--for", "1h"],
        ["sessions", "revoke", "--user", "a", "--for", "soon"],
    ],
)
def test_an_ambiguous_or_malformed_request_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing is sent: one selector for kick and revoke, and a duration for revoke."""
    assert main([*argv, "--server", "nats://127.0.0.1:1"]) == 2
    assert capsys.readouterr().err.startswith(f"callout sessions {argv[1]}:")
