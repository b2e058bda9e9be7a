"""Plain-value builders for policy and backend tests."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from callout.credentials.passwords import hash_password
from callout.decision import Identity
from callout.policy import PolicySnapshot, compile_texts
from callout.protocol.claims import AuthRequest
from callout.protocol.requests import request_claims

ALICE_PASSWORD = "alice-secret"
ALICE_HASH = hash_password(ALICE_PASSWORD)
HEADER = "version: 1\ndefaults: {account: APP}\n"
NOW = 1_800_000_000  # 2027-01-15T08:00:00Z, a Friday


def write(directory: Path, **files: str) -> Path:
    """Write each ``name_yaml=text`` as ``name.yaml`` (dedented) into ``directory``."""
    for name, text in files.items():
        filename = name.replace("_yaml", ".yaml").replace("_yml", ".yml")
        (directory / filename).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def texts(**files: str) -> dict[str, str]:
    """Each ``name_yaml=text`` as ``{"name.yaml": text}`` (dedented), for `compile_texts`."""
    return {
        name.replace("_yaml", ".yaml").replace("_yml", ".yml"): textwrap.dedent(text)
        for name, text in files.items()
    }


def snapshot(directory: Path, text: str) -> PolicySnapshot:
    """Compile a one-file policy, ``HEADER`` plus ``text``, as if read from ``directory``
    (nothing is written: the compiler takes texts)."""
    name = str(directory / "policy.yaml")
    return compile_texts({name: HEADER + textwrap.dedent(text)}, source=str(directory))


def request(
    *,
    user: str = "",
    password: str = "",
    nkey: str = "",
    sig: str = "",
    nonce: str = "",
    host: str = "127.0.0.1",
    kind: str = "Client",
    client_type: str = "nats",
    client_name: str = "",
    server: dict[str, Any] | None = None,
    token: str = "",
    jwt: str = "",
) -> AuthRequest:
    """An authorization request as nats-server 2.15 sends it, with the given parts."""
    client: dict[str, Any] = {"host": host, "id": 7, "kind": kind, "type": client_type}
    if client_name:
        client["name"] = client_name
    if nonce:
        client["nonce"] = nonce
    given = {
        "user": user,
        "pass": password,
        "nkey": nkey,
        "sig": sig,
        "auth_token": token,
        "jwt": jwt,
    }
    claims = request_claims(
        server={"id": "NSERVER", "name": "n1", **(server or {})},
        client=client,
        connect={key: value for key, value in given.items() if value},
        user_nkey="UUSER",
        account="AISSUER",
        now=NOW,
        jti="J",
    )
    return AuthRequest.from_claims(claims)


def static(name: str, **kwargs: Any) -> Identity:
    return Identity(principal=name, backend="static", **kwargs)
