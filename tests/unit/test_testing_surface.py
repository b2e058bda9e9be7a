"""`callout.testing` is in-process only, like `structlog.testing`: its public surface is pinned,
and nothing it imports can start a process or open a socket (that is `callout.devserver`)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import callout
import callout.testing
from tests.importgraph import imported_names

ROOT = Path(callout.__file__).parent.parent
SURFACE = ["ServerSimulator", "captured_logs"]
# What a helper that starts processes or talks to a network would have to import.
FORBIDDEN = {"subprocess", "socket", "multiprocessing", "http", "ssl", "nats", "callout.devserver"}


def _path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _reach(start: str) -> dict[str, set[str]]:
    """Every `callout` module importing ``start`` loads (its packages too), with what each
    imports; every import counts, inside functions included."""
    found: dict[str, set[str]] = {}
    todo = [start]
    while todo:
        module = todo.pop()
        path = _path(module)
        if module in found or path is None:
            continue
        parts = module.split(".")
        todo += [".".join(parts[:end]) for end in range(2, len(parts))]
        found[module] = set(imported_names(module, path))
        todo += [target for target in found[module] if target.startswith("callout.")]
    return found


def _forbidden(target: str) -> bool:
    return any(target == name or target.startswith(f"{name}.") for name in FORBIDDEN)


def test_the_public_surface_is_exactly_the_simulator_and_log_capture() -> None:
    assert sorted(callout.testing.__all__) == SURFACE
    module = importlib.import_module("callout.testing")
    assert all(callable(getattr(module, name)) for name in SURFACE)


def test_nothing_callout_testing_imports_starts_a_process_or_opens_a_socket() -> None:
    reached = _reach("callout.testing")
    assert "callout.observability.logs" in reached  # the walk follows imports
    bad = {(module, t) for module, targets in reached.items() for t in targets if _forbidden(t)}
    assert bad == set()


def test_the_walk_finds_a_process_helper_where_there_is_one() -> None:
    reached = _reach("callout.devserver.processes")
    assert {"subprocess", "socket"} <= reached["callout.devserver.processes"]


def test_importing_it_alone_loads_no_dev_server_and_no_nats_client() -> None:
    """In a fresh interpreter, as a user's test module would import it."""
    probe = (
        "import sys, callout.testing; "
        "print(sorted(m for m in sys.modules if m.startswith(('callout.devserver', 'nats'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
