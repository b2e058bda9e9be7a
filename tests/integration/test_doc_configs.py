"""nats-server configuration snippets in the docs are accepted by the real nats-server (-t).

README step 3 once showed `accounts { AUTH {...} APP {} OPS {} }` on one line, which
nats-server 2.15.1 refuses with a parse error. Each documented config-mode snippet is joined
into one file (the accounts with the authorization block), its placeholder keys replaced by
real ones, and checked with ``nats-server -t -c FILE``.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from callout.devserver.processes import find_nats_server
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^( *)```([a-z]*)\n(.*?)^\1```", re.DOTALL | re.MULTILINE)
# Placeholders the docs use for keys: ABC... / XYZ... in the README, A… / X… in docs/.
_ACCOUNT = re.compile(r"\b(ABC\.\.\.|A…)")
_XKEY = re.compile(r"\b(XYZ\.\.\.|X…)")
_USER = re.compile(r"\bU[A-Z0-9]{0,4}(\.\.\.|…)")  # the placeholder nkey user: UDX...


def server_blocks(path: Path) -> list[str]:
    """Fenced blocks without a language that hold config-mode nats-server config."""
    blocks = []
    for match in _FENCE.finditer(path.read_text()):
        indent, language, body = match.groups()
        text = "\n".join(line.removeprefix(indent) for line in body.splitlines())
        config_mode = "include " not in text  # operator-mode blocks need nsc's resolver.conf
        if (
            not language
            and config_mode
            and re.search(r"^\s*(accounts|auth_callout) \{", text, re.M)
        ):
            blocks.append(text)
    return blocks


def _config(blocks: list[str]) -> str:
    account = KeyPair.generate(KeyRole.ACCOUNT).public_key
    xkey = CurveKeyPair.generate().public_key
    user = KeyPair.generate(KeyRole.USER).public_key
    text = "\n".join(blocks)
    return _USER.sub(user, _XKEY.sub(xkey, _ACCOUNT.sub(account, text)))


def _check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "server.conf"
    config.write_text(text)
    return subprocess.run(
        [find_nats_server(), "-t", "-c", str(config)],
        # the documented config reads the service's password from the environment
        env={**os.environ, "NATS_AUTH_PASSWORD": "documented-password"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("document", ["README.md", "docs/protocol.md"])
def test_documented_config_mode_snippets_are_valid_server_config(
    tmp_path: Path, document: str
) -> None:
    """A reader pastes these into nats.conf; nats-server must accept them as shown."""
    blocks = server_blocks(ROOT / document)
    assert any("auth_callout" in block for block in blocks)
    assert any("accounts" in block for block in blocks)
    result = _check(tmp_path, _config(blocks))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_refuses_accounts_on_one_line(tmp_path: Path) -> None:
    """The config test sees the parse error the old README example had."""
    old = "accounts { AUTH { users: [ {user: auth, password: x} ] } APP {} OPS {} }\n"
    assert _check(tmp_path, old).returncode != 0
