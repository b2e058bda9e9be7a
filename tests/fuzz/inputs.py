"""The fuzz inputs of the atheris target: how bytes become a message to the worker, the seeds.

The first input byte is a control byte: bits 0-1 choose the mode, bit 2 an xkey-encrypted
service, bits 3-4 how many failed logins the throttle already holds for the request's
principal and address. Modes:

0. the message payload as is (a mutated JWT, or a mutated xkv1 box);
1. the payload as a JWT that is then sealed properly (a mutated JWT inside a valid box);
2. the payload as claims JSON that the simulated server signs (and seals): past the signature
   checks into claim parsing, backends, throttle, policy, signing and sealing;
3. a header line (empty: no header), then the payload as is (a mutated ``Nats-Server-Xkey``).

No atheris here: CI replays the seeds (`test_seeds.py`), and coverage.py replays a corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

from callout.protocol import jwt, xkey
from callout.protocol.nkeys import CurveKeyPair
from tests.fuzz.harness import NOW, SERVER, SERVICE_XKEY, base_claims, sign
from tests.fuzz.worker_target import THROTTLE_LIMIT, deliver


def one_input(data: bytes) -> str:
    """Decode one fuzz input and deliver it; returns the outcome ('skipped': not an input)."""
    if not data:
        return "skipped"
    control, body = data[0], data[1:]
    mode, encrypted, failures = control & 3, bool(control & 4), (control >> 3) & 3
    header = SERVER.xkey.public_key if encrypted else None
    if mode == 1:
        body = xkey.seal(body, SERVER.xkey, SERVICE_XKEY.public_key) if encrypted else body
    elif mode == 2:
        try:
            claims = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return "skipped"
        if not isinstance(claims, dict):
            return "skipped"
        try:
            token = jwt.encode(claims, SERVER.key, iat=NOW).encode()
        except (TypeError, ValueError, RecursionError):
            return "skipped"
        body = xkey.seal(token, SERVER.xkey, SERVICE_XKEY.public_key) if encrypted else token
    elif mode == 3:
        line, _, body = body.partition(b"\n")
        header = line.decode("utf-8", "replace") or None
    return deliver(body, header, encrypted=encrypted, failures=failures)


def seeds() -> dict[str, bytes]:
    """Valid requests in every mode: allowed nkey and password logins, a wrong password,
    plain and sealed, with an empty throttle and with one at its limit."""
    found: dict[str, bytes] = {}
    for kind in ("nkey", "password", "wrong"):
        for encrypted in (False, True):
            claims = base_claims(kind, encrypted=encrypted)
            token = sign(claims, encrypted=False)
            sealed = sign(claims, encrypted=encrypted)
            for failures in (0, THROTTLE_LIMIT):
                flags = int(encrypted) << 2 | failures << 3
                name = f"{kind}-{'sealed' if encrypted else 'plain'}-{failures}"
                found[f"raw-{name}"] = bytes([0 | flags]) + sealed
                found[f"jwt-{name}"] = bytes([1 | flags]) + token
                found[f"claims-{name}"] = bytes([2 | flags]) + json.dumps(claims).encode()
                header = (SERVER.xkey.public_key if encrypted else "").encode()
                found[f"header-{name}"] = bytes([3 | flags]) + header + b"\n" + sealed
    # A box with one flipped byte, and a box opened with another server's xkey.
    sealed = sign(base_claims("nkey", encrypted=True), encrypted=True)
    found["raw-tampered-box"] = bytes([4]) + sealed[:60] + bytes([sealed[60] ^ 1]) + sealed[61:]
    other = CurveKeyPair(bytes(range(32))).public_key.encode()
    found["header-other-xkey"] = bytes([3 | 4]) + other + b"\n" + sealed
    return found


def write_seeds(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, seed in seeds().items():
        (directory / name).write_bytes(seed)


def replay(directory: Path) -> dict[str, int]:
    """Run every input of a corpus once (for coverage measurement); outcomes counted."""
    counts: dict[str, int] = {}
    for path in sorted(directory.iterdir()):
        outcome = one_input(path.read_bytes())
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
