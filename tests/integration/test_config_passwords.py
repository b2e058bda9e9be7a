"""The service's password reaches nats-server through ``$NATS_AUTH_PASSWORD``; the server's
config parser reads a value that starts with a digit as a number or a date."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from callout.devserver.config_mode import config_safe_password
from callout.devserver.processes import find_nats_server

pytestmark = pytest.mark.integration


def _loads(tmp_path: Path, password: str) -> bool:
    config = tmp_path / "server.conf"
    config.write_text(
        "authorization { users: [ { user: auth, password: $NATS_AUTH_PASSWORD } ] }\n"
    )
    result = subprocess.run(
        [find_nats_server(), "-t", "-c", str(config)],
        env={**os.environ, "NATS_AUTH_PASSWORD": password},
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


def test_a_password_starting_with_a_digit_and_a_dash_stops_the_server(tmp_path: Path) -> None:
    assert not _loads(tmp_path, "5-CmJ0xq")
    assert _loads(tmp_path, "p5-CmJ0xq")


def test_generated_passwords_start_with_a_letter_and_load(tmp_path: Path) -> None:
    passwords = [config_safe_password() for _ in range(2000)]
    assert all(password[0].isalpha() for password in passwords)
    assert len(set(passwords)) == len(passwords)
    assert all(_loads(tmp_path, password) for password in passwords[:20])
