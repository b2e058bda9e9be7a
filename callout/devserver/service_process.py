"""`callout serve` as a child process: the replica the fault tests kill and restart, the service
`callout bench` measures. Its settings are written to a YAML file, its JSON log to another."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from callout.devserver.processes import stop_process
from callout.settings import Settings

READY = "service_ready"


def write_settings(settings: Settings, path: Path) -> Path:
    """``settings`` as the YAML file `callout serve --config` reads."""
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_none=True)))
    return path


class ServiceProcess:
    """``callout serve --config config_file``, logging JSON lines to ``log_file``."""

    def __init__(self, config_file: Path, log_file: Path) -> None:
        self.config_file = config_file
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.config_file.name}: not started")
        return self.process.pid

    def start(self) -> None:
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
                [sys.executable, "-m", "callout", "serve", "--config", str(self.config_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "CALLOUT_LOG__FORMAT": "json"},
            )

    def text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def wait_for(self, marker: str = READY, timeout: float = 30.0, after: int = 0) -> None:
        """Wait (bounded) until the log, from character ``after`` on, contains ``marker``;
        fail at once with the log's tail if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.text()[after:]:
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.config_file.name}: service exited with {self.process.returncode} "
                    f"before logging {marker!r}: {self.text()[-2000:]}"
                )
            time.sleep(0.05)
        raise TimeoutError(f"{marker!r} not logged by {self.config_file.name} in {timeout}s")

    def kill(self) -> None:
        """SIGKILL: a crash, no drain."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.process, timeout)
