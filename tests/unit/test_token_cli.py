"""`callout token new|pepper` as a platform team runs them: the token once, an entry to paste."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callout.backends.passwords import PasswordVerifier
from callout.backends.tokens import TokenBackend, read_pepper
from callout.cli import EXIT_CONFIG, main
from callout.decision import Identity
from callout.policy import load_policy
from tests.unit.policy.helpers import HEADER, request, write


@pytest.fixture
def pepper(tmp_path: Path) -> Path:
    path = tmp_path / "pepper"
    assert main(["token", "pepper", "--file", str(path)]) == 0
    return path


@pytest.fixture
def verifier() -> Iterator[PasswordVerifier]:
    pool = PasswordVerifier(max_workers=1)
    yield pool
    pool.close()


async def test_a_new_token_is_printed_once_and_its_entry_logs_it_in(
    tmp_path: Path,
    pepper: Path,
    verifier: PasswordVerifier,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The printed entry, pasted as is, must accept exactly the printed token."""
    capsys.readouterr()
    argv = ["token", "new", "--pepper-file", str(pepper), "--owner", "team-ci@example.org"]
    assert main([*argv, "--roles", "deploy", "--account", "APP", "--expires", "30d"]) == 0
    out = capsys.readouterr().out
    token, entry = out.split("\n", 1)
    assert token.startswith("nac_")
    assert out.count(token) == 1
    assert read_pepper(pepper).decode() not in out
    roles = 'roles:\n  deploy: {publish: {allow: ["deploy.>"]}}\n'
    directory = tmp_path / "policy"
    directory.mkdir()
    policy = load_policy(write(directory, t_yaml=HEADER + roles + entry))
    identity = await TokenBackend(read_pepper(pepper), verifier).authenticate(
        request(token=token), policy
    )
    assert isinstance(identity, Identity)
    assert identity.attributes["owner"] == "team-ci@example.org"
    assert identity.expires_at is not None


def test_a_pepper_readable_by_everyone_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pepper is a secret: the command will not use one anybody could read."""
    pepper = tmp_path / "pepper"
    pepper.write_text("p" * 40)
    pepper.chmod(0o644)
    argv = ["token", "new", "--pepper-file", str(pepper), "--owner", "me"]
    assert main(argv) == EXIT_CONFIG
    captured = capsys.readouterr()
    assert "readable by everyone" in captured.err
    assert "nac_" not in captured.out


def test_a_pepper_file_is_private_and_never_overwritten(pepper: Path) -> None:
    """Overwriting a pepper would invalidate every token issued under it."""
    assert pepper.stat().st_mode & 0o777 == 0o600
    assert len(read_pepper(pepper)) >= 32
    assert main(["token", "pepper", "--file", str(pepper)]) == EXIT_CONFIG
