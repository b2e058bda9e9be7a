"""The `policy check`, `policy explain`, `policy test` and `policy diff` sessions of
policies/README.md run as written, in a copy of the example policies, and print what the
README shows (`…` marks lines left out)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from callout.credentials.passwords import hash_password

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "policies" / "README.md"


def _sessions(section: str) -> list[tuple[str, list[str]]]:
    """(command, output lines) of each `$ callout ...` in the console blocks of ``section``."""
    text = README.read_text(encoding="utf-8").split(f"\n## {section}\n", 1)[1].split("\n## ")[0]
    found: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ callout "):
                found.append((line[2:].split("  #", 1)[0].strip(), []))
            elif line.strip() and found:
                found[-1][1].append(line)
    return found


def _run(command: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``command`` through a shell (its redirections as written), `callout` being this one."""
    script = f"{shlex.quote(sys.executable)} -m {command}"
    return subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _shown_in_order(shown: list[str], printed: list[str]) -> None:
    """Every shown line is printed, in the README's order (`…` skips any number of lines)."""
    rest = iter(printed)
    for line in shown:
        if line == "…":
            continue
        if line.endswith(" …"):  # the rest of the line differs from run to run (a digest)
            head = line.removesuffix("…")
            found = any(out.startswith(head) for out in rest)
        else:
            found = line in rest
        assert found, f"README line not printed (or out of order): {line!r}\n{printed}"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    return tmp_path


def test_explain_sessions_print_what_the_readme_shows(workdir: Path) -> None:
    """alice from a password file; carol (the README's src-limited user) from another network."""
    (workdir / "alice-password.txt").write_text("alice-secret")  # policies/users.yaml's header
    (workdir / "policies" / "carol.yaml").write_text(
        "version: 1\nusers:\n  carol:\n"
        f'    password: "{hash_password("carol-secret")}"\n'
        "    roles: [app-rw]\n    src: [10.0.0.0/8]\n"
    )
    (alice, alice_shown), (carol, carol_shown) = _sessions("Explain a login")
    printed = _run(alice, workdir)
    assert printed.returncode == 0, printed.stderr
    abbreviated_claims = alice_shown[-1]
    assert abbreviated_claims.startswith('{ "aud": "APP", "name": "alice"')
    _shown_in_order(
        [line for line in alice_shown[:-1] if line.strip() != "..."], printed.stdout.splitlines()
    )
    printed = _run(carol, workdir, stdin="carol-secret")
    assert printed.returncode == 0, printed.stderr
    _shown_in_order(
        [line for line in carol_shown if line != "Password:"], printed.stdout.splitlines()
    )


def test_policy_test_session_prints_what_the_readme_shows(workdir: Path) -> None:
    """The change the README describes (bob: app-rw instead of public-reader, no expiry) fails
    bob's case with the differences shown, and only his; exit 1."""
    users = workdir / "policies" / "users.yaml"
    before = "    roles: [public-reader]\n    expiry: 15m\n"
    assert before in users.read_text()
    users.write_text(users.read_text().replace(before, "    roles: [app-rw]\n"))
    command, shown = _sessions("Test a policy")[0]
    printed = _run(command, workdir)
    assert printed.returncode == 1, printed.stderr
    _shown_in_order(shown, printed.stdout.splitlines())


def test_policy_test_session_passes_on_the_example_policies(workdir: Path) -> None:
    """Unchanged, the example policies pass their own tests (the README's command, exit 0)."""
    command, _ = _sessions("Test a policy")[0]
    printed = _run(command, workdir)
    assert printed.returncode == 0, printed.stdout
    assert printed.stdout.splitlines()[-1] == "policy tests: 8 passed, 0 failed"


def test_policy_check_sessions_print_what_the_readme_shows(workdir: Path) -> None:
    """The two mistakes the README names: the error alone (exit 1, nothing linted), then,
    with the password hashed again, the warning and the note (exit 0)."""
    users, roles = workdir / "policies" / "users.yaml", workdir / "policies" / "roles.yaml"
    hashed = users.read_text()
    bob = re.search(r'(  bob:\n(?:    .*\n)*?    password: )"([^"]+)"', hashed)
    assert bob
    users.write_text(hashed.replace(bob.group(0), f'{bob.group(1)}"hunter2"'))
    sensor = 'allow: ["sensors.{{user.name}}.>"]'
    assert sensor in roles.read_text()
    roles.write_text(roles.read_text().replace(sensor, 'allow: [">"]'))
    (error, error_shown), (warning, warning_shown) = _sessions("Check a policy before you merge it")
    printed = _run(error, workdir)
    assert printed.returncode == 1
    _shown_in_order(error_shown, (printed.stdout + printed.stderr).splitlines())
    users.write_text(hashed)
    printed = _run(warning, workdir)
    assert printed.returncode == 0, printed.stdout + printed.stderr
    _shown_in_order(warning_shown, (printed.stdout + printed.stderr).splitlines())


def test_policy_diff_session_prints_what_the_readme_shows(workdir: Path) -> None:
    """The change the README describes, against the example policies as they were (the
    README's `/tmp/main` worktree is a copy here): exactly the lines shown, exit 0."""
    old = workdir / "main"
    shutil.copytree(workdir / "policies", old / "policies")
    roles, users = workdir / "policies" / "roles.yaml", workdir / "policies" / "users.yaml"
    publish = '    publish:\n      allow: ["app.>"]\n'
    assert publish in roles.read_text()
    roles.write_text(
        roles.read_text().replace(publish, f'{publish}      deny: ["app.admin.>"]\n', 1)
    )
    bob = "    roles: [public-reader]\n    expiry: 15m\n"
    carol = f'  carol:\n    password: "{hash_password("carol-secret")}"\n'
    carol += '    publish: {allow: ["app.>"]}\n\n'
    assert bob in users.read_text()
    users.write_text(
        users.read_text()
        .replace(
            bob,
            "    roles: [public-reader]\n    expiry: 30m\n"
            '    subscribe: {allow: ["metrics.>"]}\n    src: [10.0.0.0/8]\n',
        )
        .replace("  bob:\n", carol + "  bob:\n", 1)
    )
    ((command, shown),) = _sessions("Review a change")
    printed = _run(command.replace("/tmp/main", str(old)), workdir)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.splitlines() == shown
