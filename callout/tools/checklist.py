"""The checklist `callout verify` prints, and the pure judgements behind its items.

Each item is a `Check`: a name, a status (``ok``, ``warn``, ``fail``, ``skip``), what was
found, and what to do when it is not ``ok``. The judgements here take plain values (what the
server sent, the server's error text, the settings' keys) and never touch the network, so
each misconfiguration's wording is tested without a server.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but deserves attention; does not fail the run
    FAIL = "fail"
    SKIP = "skip"  # not checked (say why in detail)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str = ""


def passed(checks: list[Check]) -> bool:
    return all(check.status is not Status.FAIL for check in checks)


def render_text(checks: list[Check]) -> str:
    """One line per check (``[ok]``, ``[FAIL]``, ...), its hint indented under it."""
    marks = {Status.OK: "ok", Status.WARN: "warn", Status.FAIL: "FAIL", Status.SKIP: "skip"}
    lines = []
    for check in checks:
        lines.append(f"[{marks[check.status]:>4}] {check.name}: {check.detail}")
        if check.hint:
            lines.append(f"       -> {check.hint}")
    verdict = "ready to go live" if passed(checks) else "NOT ready: fix the FAIL items"
    lines.append(verdict)
    return "\n".join(lines)


def render_json(checks: list[Check]) -> str:
    body = {"ok": passed(checks), "checks": [asdict(check) for check in checks]}
    return json.dumps(body, indent=2)


def xkey_check(*, configured: str | None, sealed: bool, opened: bool) -> Check:
    """Whether the server's ``auth_callout.xkey`` matches ``keys.xkey_seed_file``.

    ``configured``: the public key of our xkey seed (None: not set); ``sealed``: the request
    came encrypted; ``opened``: our seed decrypted it.
    """
    name = "xkey"
    if configured is None and not sealed:
        return Check(name, Status.OK, "requests are not encrypted, and no xkey is configured")
    if configured is None:
        return Check(
            name,
            Status.FAIL,
            "the server encrypts requests (auth_callout has an xkey), but"
            " keys.xkey_seed_file is not set",
            "set keys.xkey_seed_file to the seed of the server's auth_callout.xkey",
        )
    if not sealed:
        return Check(
            name,
            Status.FAIL,
            "keys.xkey_seed_file is set, but the server sends plaintext requests",
            f"add xkey: {configured} to the server's auth_callout (or remove keys.xkey_seed_file)",
        )
    if not opened:
        return Check(
            name,
            Status.FAIL,
            "the server encrypts requests to another key than keys.xkey_seed_file's",
            f"the server's auth_callout.xkey must be {configured}",
        )
    return Check(name, Status.OK, f"requests are encrypted to {configured}")


# The server's error texts (auth-error advisory ``reason``) that name a key or account
# problem, and what each means for the settings. Matched case-insensitively, first wins.
_REASONS: tuple[tuple[str, str, str], ...] = (
    (
        "wrong issuer",
        "issuer",
        "the server's auth_callout.issuer is not the key of keys.issuer_seed_file ({issuer})",
    ),
    (
        "signing key is unknown",
        "issuer",
        "the server's auth_callout.issuer is not the key of keys.issuer_seed_file ({issuer})",
    ),
    (
        "not permitted as valid account option",
        "accounts",
        "the callout account's allowed_accounts does not include the target account",
    ),
    (
        "no valid account",
        "accounts",
        "the target account does not exist on the server (accounts / operator.accounts)",
    ),
    (
        "error decrypting auth callout response",
        "xkey",
        "the server could not decrypt the answer: its auth_callout.xkey and"
        " keys.xkey_seed_file differ",
    ),
)


_OPERATOR_ISSUER = (
    "a response or user JWT is signed by a key the account JWTs do not list: compare"
    " operator.*.signing_seed_file and signing_keys with `nsc describe account`"
)


def server_reason(reason: str, *, issuer: str, operator: bool = False) -> tuple[str, str] | None:
    """(area, what to do) for a server error text that names a configuration problem."""
    lowered = reason.lower()
    for needle, area, hint in _REASONS:
        if needle in lowered:
            if area == "issuer" and operator:
                return area, _OPERATOR_ISSUER
            return area, hint.format(issuer=issuer)
    return None
