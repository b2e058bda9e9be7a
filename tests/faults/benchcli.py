"""`callout bench` as a child process, the way a user runs it, stopped with Ctrl-C (SIGINT:
the bench stops its own nats-server and services) if it outlives ``timeout``."""

from __future__ import annotations

import signal
import subprocess
import sys

from callout.devserver.processes import stop_process


def run_bench(arguments: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "callout", "bench", *arguments]
    bench = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = bench.communicate(timeout=timeout)
    finally:
        if bench.poll() is None:
            bench.send_signal(signal.SIGINT)
            try:
                bench.wait(30)
            finally:
                stop_process(bench)
    return subprocess.CompletedProcess(command, bench.returncode, stdout, stderr)
