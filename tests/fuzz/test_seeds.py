"""The atheris seeds stay valid: with fixed keys and clock, each one reaches the decision it
was written for through the worker, in every process, on any day (seeds written with the
wall clock and fresh keys were all expired or undecryptable by the time a fuzzer read them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.fuzz.inputs import one_input, seeds
from tests.fuzz.worker_target import THROTTLE_LIMIT

SCRIPT = Path(__file__).with_name("atheris_request_path.py")


def _expected(name: str) -> str:
    if name in ("raw-tampered-box", "header-other-xkey"):
        return "dropped"
    _, kind, _, failures = name.split("-")
    if int(failures) >= THROTTLE_LIMIT:
        return "dropped"  # the throttle holds the principal's failures already
    return "denied" if kind == "wrong" else "allowed"


def test_every_seed_reaches_its_decision_through_the_worker() -> None:
    found = seeds()
    assert len(found) == 3 * 2 * 2 * 4 + 2
    outcomes = {name: one_input(data) for name, data in found.items()}
    assert outcomes == {name: _expected(name) for name in found}


def test_a_written_corpus_replays_in_a_fresh_process(tmp_path: Path) -> None:
    """The README's seed and replay commands; the replay runs in another process."""
    corpus = tmp_path / "corpus"
    for command in ("seed", "replay"):
        finished = subprocess.run(
            [sys.executable, str(SCRIPT), command, str(corpus)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    assert json.loads(finished.stdout) == {"allowed": 16, "denied": 8, "dropped": 26}
