"""The `callout` commands deploy/README.md shows run as written (in a scratch directory).

kubectl and helm commands need a cluster and are not run here; what they create is checked
by tests/deploy/test_manifests.py (Secret keys) and deploy/check.sh (rendered manifests).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "deploy" / "README.md"
_SH_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
_INLINE = re.compile(r"`(callout [^`]+)`")


def _commands() -> list[str]:
    text = README.read_text()
    lines = [
        line.split("#", 1)[0].strip()
        for block in _SH_BLOCK.findall(text)
        for line in block.splitlines()
        if line.startswith("callout ")
    ]
    lines += [c for c in _INLINE.findall(text) if "--issuer-seed-file" in c]
    return lines


def test_deploy_readme_callout_commands_run(tmp_path: Path) -> None:
    """Keys first, then the server block from them: the order an operator follows."""
    commands = _commands()
    assert any(c.startswith("callout keys generate") for c in commands)
    assert any(c.startswith("callout nats-config") for c in commands)
    for command in commands:
        argv = [sys.executable, "-m", "callout", *shlex.split(command)[1:]]
        result = subprocess.run(
            argv, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    assert (tmp_path / "keys" / "issuer.nk").stat().st_mode & 0o077 == 0
