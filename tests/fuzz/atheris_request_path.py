"""Coverage-guided byte-level fuzzing through the worker with atheris (long runs).

Not collected by pytest. Run it with `make fuzz` (see tests/fuzz/README.md), or by hand with
atheris installed next to this project:

    python tests/fuzz/atheris_request_path.py seed CORPUS_DIR       # valid inputs to start from
    python tests/fuzz/atheris_request_path.py CORPUS_DIR -atheris_runs=1000000
    python tests/fuzz/atheris_request_path.py replay CORPUS_DIR     # run a corpus once, no atheris

The input format is `tests.fuzz.inputs`; keys and clock are fixed (`tests.fuzz.harness`), so a
corpus stays valid across processes and days. The invariant is `tests.fuzz.worker_target`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str]) -> int:
    if argv[1:2] in (["seed"], ["replay"]):
        from tests.fuzz.inputs import replay, write_seeds  # noqa: PLC0415 - no atheris here

        if argv[1] == "seed":
            write_seeds(Path(argv[2]))
        else:
            print(json.dumps(replay(Path(argv[2]))))  # noqa: T201 - a command-line tool
        return 0
    import atheris  # noqa: PLC0415 - only in the fuzzing venv

    with atheris.instrument_imports(include=["callout"]):
        from tests.fuzz.inputs import one_input  # noqa: PLC0415 - instrumented on import

    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
