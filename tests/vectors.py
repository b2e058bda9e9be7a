"""Access to the captured vectors (real nats-server 2.15.1 traffic), vendored in tests/data from
the team's shared/vectors so a clone tests itself wherever it is checked out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parent / "data" / "vectors"


def vectors_dir() -> Path:
    if not VECTORS.is_dir():
        pytest.fail(f"test vectors missing: {VECTORS}")
    return VECTORS


def load(relative: str) -> Any:
    return json.loads((vectors_dir() / relative).read_text())


def captured_records() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every captured request record in every scenarios file, with its file name."""
    for path in sorted(vectors_dir().rglob("*.json")):
        data = json.loads(path.read_text())
        for record in data if isinstance(data, list) else [data]:
            if isinstance(record, dict) and record.get("request_jwt"):
                yield f"{path.relative_to(VECTORS)}:{record.get('scenario_key', '')}", record
