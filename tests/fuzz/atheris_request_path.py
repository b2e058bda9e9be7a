"""Coverage-guided byte-level fuzzing of the request path with atheris (long runs).

Not collected by pytest. Run (atheris in its own venv with this project installed):

    python tests/fuzz/atheris_request_path.py seed CORPUS_DIR       # valid inputs to start from
    python tests/fuzz/atheris_request_path.py CORPUS_DIR -atheris_runs=1000000

Modes, chosen by the first input byte: raw payload bytes (with or without an xkey header),
or bytes taken as the claims JSON that the simulated server then signs (and seals), which
gets past signature checks into claim parsing, backends, policy and signing. The invariant is
`tests.fuzz.harness.check`: a typed rejection or a correct decision, never a crash or a
wrong grant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from callout.protocol import jwt, xkey
    from tests.fuzz.harness import (
        NONCE,
        NOW,
        PASSWORD,
        SERVER,
        SERVICE_XKEY,
        USER_KEY,
        check,
        valid_signature,
    )


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 4, data[1:]
    encrypted = mode in (1, 3)
    if mode < 2:  # modes 0 and 1: raw bytes
        header = SERVER.xkey.public_key if encrypted else None
        check(body, header, encrypted=encrypted)
        return
    try:
        claims = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return
    if not isinstance(claims, dict):
        return
    try:
        token = jwt.encode(claims, SERVER.key, iat=NOW).encode()
    except (TypeError, ValueError, RecursionError):
        return
    if encrypted:
        check(
            xkey.seal(token, SERVER.xkey, SERVICE_XKEY.public_key),
            SERVER.xkey.public_key,
            encrypted=True,
        )
    else:
        check(token, None, encrypted=False)


def write_seeds(directory: Path) -> None:
    """Valid requests in every mode: an allowed nkey login and password login, plain and sealed."""
    directory.mkdir(parents=True, exist_ok=True)
    logins = [
        ({"nkey": USER_KEY.public_key, "sig": valid_signature()}, {"nonce": NONCE, "name": "x"}),
        ({"user": "alice", "pass": PASSWORD}, {"name": "x"}),
    ]
    for index, (connect, client) in enumerate(logins):
        for encrypted in (False, True):
            claims = SERVER.claims(now=NOW, connect=connect, client=client, encrypted=encrypted)
            token = jwt.encode(claims, SERVER.key, iat=NOW).encode()
            raw = xkey.seal(token, SERVER.xkey, SERVICE_XKEY.public_key) if encrypted else token
            (directory / f"raw-{index}-{encrypted}").write_bytes(bytes([int(encrypted)]) + raw)
            text = json.dumps(claims).encode()
            (directory / f"claims-{index}-{encrypted}").write_bytes(
                bytes([2 + int(encrypted)]) + text
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["seed"]:
        write_seeds(Path(sys.argv[2]))
        raise SystemExit(0)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
