"""Fuzzing the whole request path: structured mutations of valid requests and raw bytes, at
the pipeline and through the worker (throttle, deadlines, audit, signer, xkey boxes)."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callout.protocol import jwt, xkey
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole, encode_public
from tests.fuzz.harness import NOW, SERVER, SERVICE_XKEY, base_claims, check, sign
from tests.fuzz.worker_target import THROTTLE_LIMIT, deliver

# Examples per test: the CI profile runs 4 x 2,000 + 2 x 1,200 = 10,400 in all (the two tests
# that generate whole JSON values get fewer: generating them costs the most). A long run:
# CALLOUT_FUZZ_EXAMPLES=100000 (see tests/fuzz/README.md).
EXAMPLES = int(os.environ.get("CALLOUT_FUZZ_EXAMPLES", "2000"))
_PROFILE = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
FUZZ = settings(max_examples=EXAMPLES, **_PROFILE)
FUZZ_JSON = settings(max_examples=EXAMPLES * 3 // 5, **_PROFILE)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)

# Where a mutation may land: every member the pipeline reads, and some it does not.
_CLIENT = ("nats", "client_info")
_CONNECT = ("nats", "connect_opts")
_SERVER = ("nats", "server_id")
PATHS = [
    ("aud",), ("exp",), ("iat",), ("sub",), ("iss",), ("nats", "type"), ("nats", "version"),
    ("nats", "user_nkey"), _SERVER, (*_SERVER, "id"), (*_SERVER, "xkey"), (*_SERVER, "tags"),
    _CLIENT, (*_CLIENT, "host"), (*_CLIENT, "nonce"), (*_CLIENT, "name"), (*_CLIENT, "kind"),
    (*_CLIENT, "type"), _CONNECT, (*_CONNECT, "user"), (*_CONNECT, "pass"), (*_CONNECT, "nkey"),
    (*_CONNECT, "sig"), (*_CONNECT, "auth_token"), (*_CONNECT, "jwt"), (*_CONNECT, "protocol"),
    ("nats", "client_tls"),
]  # fmt: skip


def _base(kind: str, encrypted: bool) -> dict[str, Any]:
    return copy.deepcopy(base_claims(kind, encrypted=encrypted))


def _set(claims: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node: Any = claims
    for key in path[:-1]:
        if not isinstance(node, dict):
            return
        node = node.setdefault(key, {})
    if isinstance(node, dict):
        if value is _DELETE:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value


_DELETE = object()
KINDS = st.sampled_from(["nkey", "password", "wrong"])


def _mutations(max_size: int) -> st.SearchStrategy[list[tuple[tuple[str, ...], Any]]]:
    """Up to ``max_size`` (claim path, new value or deletion) pairs."""
    return st.lists(
        st.tuples(st.sampled_from(PATHS), st.one_of(json_values, st.just(_DELETE))),
        max_size=max_size,
    )


def _mutated(
    kind: str, encrypted: bool, mutations: list[tuple[tuple[str, ...], Any]]
) -> dict[str, Any]:
    claims = _base(kind, encrypted)
    for path, value in mutations:
        _set(claims, path, value)
    return claims


@FUZZ_JSON
@given(
    kind=KINDS,
    encrypted=st.booleans(),
    mutations=_mutations(4),
    signer=st.sampled_from(["server", "other-server", "account"]),
)
def test_mutated_claims_are_refused_or_decided_correctly(
    kind: str, encrypted: bool, mutations: list[tuple[tuple[str, ...], Any]], signer: str
) -> None:
    """Valid-looking requests with mutated claims: never a crash, never a wrong grant."""
    claims = _mutated(kind, encrypted, mutations)
    key = {
        "server": SERVER.key,
        "other-server": KeyPair.generate(KeyRole.SERVER),
        "account": KeyPair.generate(KeyRole.ACCOUNT),
    }[signer]
    try:
        payload = sign(claims, encrypted=encrypted, key=key)
    except (TypeError, ValueError):
        return  # not JSON-serialisable: nothing a server could send
    header = SERVER.xkey.public_key if encrypted else None
    outcome = check(payload, header, encrypted=encrypted)
    if signer != "server" and outcome != "dropped":
        raise AssertionError("a request not signed by its server was worked on")


@FUZZ
@given(
    kind=KINDS,
    encrypted=st.booleans(),
    position=st.integers(min_value=0, max_value=2000),
    replacement=st.binary(min_size=1, max_size=8),
    header=st.sampled_from(["same", "none", "other"]),
)
def test_corrupted_bytes_are_refused(
    kind: str, encrypted: bool, position: int, replacement: bytes, header: str
) -> None:
    """Byte-level corruption of a signed (and sealed) request never crashes and never grants."""
    payload = sign(_base(kind, encrypted), encrypted=encrypted)
    at = position % len(payload)
    corrupted = payload[:at] + replacement + payload[at + len(replacement) :]
    header_value = {
        "same": SERVER.xkey.public_key if encrypted else None,
        "none": None,
        "other": CurveKeyPair.generate().public_key,
    }[header]
    outcome = check(corrupted, header_value, encrypted=encrypted)
    if corrupted != payload:
        assert outcome in ("dropped", "denied", "allowed")


@FUZZ
@given(
    payload=st.binary(max_size=3000),
    header=st.one_of(st.none(), st.text(max_size=60)),
    encrypted=st.booleans(),
)
def test_arbitrary_bytes_are_dropped(payload: bytes, header: str | None, encrypted: bool) -> None:
    """Random payloads and headers: always a typed rejection."""
    assert check(payload, header, encrypted=encrypted) == "dropped"


@FUZZ
@given(name=st.text(min_size=0, max_size=12))
def test_any_client_name_either_fills_the_template_safely_or_denies(name: str) -> None:
    """Template values are sanitised: an unsafe client name can never produce a wider subject."""
    claims = _base("password", False)
    claims["nats"]["client_info"]["name"] = name
    outcome = check(sign(claims, encrypted=False), None, encrypted=False)
    unsafe = not name or not name.isprintable() or any(c in ".*>" or c.isspace() for c in name)
    unsafe = unsafe or name.startswith("_INBOX")  # no value may name a reply namespace
    assert outcome == ("denied" if unsafe else "allowed"), json.dumps(name)


@FUZZ_JSON
@given(
    kind=KINDS,
    encrypted=st.booleans(),
    mutations=_mutations(3),
    failures=st.integers(min_value=0, max_value=THROTTLE_LIMIT),
)
def test_mutated_claims_through_the_worker(
    kind: str, encrypted: bool, mutations: list[tuple[tuple[str, ...], Any]], failures: int
) -> None:
    """Mutated claims, signed and sealed properly, delivered to the worker's subscription
    (with the throttle at any fill): one audit event, a bound answer or none, no wrong grant."""
    claims = _mutated(kind, encrypted, mutations)
    try:
        payload = sign(claims, encrypted=encrypted)
    except (TypeError, ValueError):
        return
    header = SERVER.xkey.public_key if encrypted else None
    outcome = deliver(payload, header, encrypted=encrypted, failures=failures)
    if failures >= THROTTLE_LIMIT:
        assert outcome != "allowed", "a throttled principal was granted"


@FUZZ
@given(
    kind=KINDS,
    inside=st.booleans(),
    position=st.integers(min_value=0, max_value=2000),
    replacement=st.binary(min_size=1, max_size=8),
)
def test_mutated_boxes_through_the_worker(
    kind: str, inside: bool, position: int, replacement: bytes
) -> None:
    """Corrupted bytes of the JWT inside a properly sealed box, or of the box itself: the
    worker drops or answers correctly, never crashes and never grants a wrong credential."""
    claims = _base(kind, True)
    target = (
        jwt.encode(claims, SERVER.key, iat=NOW).encode() if inside else sign(claims, encrypted=True)
    )
    at = position % len(target)
    corrupted = target[:at] + replacement + target[at + len(replacement) :]
    if inside:
        corrupted = xkey.seal(corrupted, SERVER.xkey, SERVICE_XKEY.public_key)
    outcome = deliver(corrupted, SERVER.xkey.public_key, encrypted=True)
    if not inside and corrupted != target:
        assert outcome == "dropped", "a corrupted box was opened"


def test_a_low_order_xkey_header_is_dropped_with_one_audit_event() -> None:
    """32 zero bytes as the server's xkey: a drop with one audit event, never an exception."""
    payload = sign(_base("nkey", True), encrypted=True)
    low_order = encode_public(KeyRole.CURVE, bytes(32))
    assert deliver(payload, low_order, encrypted=True) == "dropped"
