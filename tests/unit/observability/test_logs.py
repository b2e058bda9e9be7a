"""Redaction: secrets never reach a rendered log line, by key or by shape, at any depth."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
import structlog.testing
from hypothesis import given
from hypothesis import strategies as st

from callout.observability import logs
from callout.observability.logs import REDACTED, redact_value, scrub
from callout.protocol import jwt
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.testing import captured_logs

SEED = KeyPair.generate(KeyRole.USER).seed
TOKEN_JWT = jwt.encode({"sub": "x"}, KeyPair.generate(KeyRole.ACCOUNT), iat=1)
ARGON = (
    "$argon2id$v=19$m=19456,t=2,p=1$wL0yU0jqeSJyvC+mQ1ytkw$"
    "jruO5HnOV4qlHF/iFdqfqPsIdMMQIo6Lu/jVmV35odc"
)
BCRYPT = "$2b$04$ZIO36hGHTCY0kqGRKEE7S./EuP4yFj5COBWBzGG4IjxpmdSMFnGM."
API_TOKEN = "cot_k3y1d_Q2x9Lm4Tz8Rb7Wn6Yc5Vd0Hf3Jg1Kp2Sa9Ue"


@pytest.mark.parametrize(
    "secret",
    [SEED, TOKEN_JWT, ARGON, BCRYPT, API_TOKEN, "Bearer abc.def-ghi", "A" * 40 + "b" * 50],
    ids=["seed", "jwt", "argon2", "bcrypt", "api-token", "bearer", "long-base64"],
)
def test_secret_shaped_text_is_redacted_inside_any_string(secret: str) -> None:
    """Secrets leak through messages and exceptions, not only through well-named keys."""
    assert secret not in scrub(f"could not use {secret} here")
    assert REDACTED in scrub(f"could not use {secret} here")


def test_public_identifiers_stay_readable() -> None:
    """Public nkeys, digests and names are what operators need to debug; keep them."""
    public = KeyPair.generate(KeyRole.USER).public_key
    digest = "5ecc9f7d56928d40201e1b0919b1683f6930fd0c054fc1371fa6da2f7e2920bf"
    text = f"user {public} policy {digest} test_name_of_some_function"
    assert scrub(text) == text


def test_password_in_a_url_is_redacted_but_the_host_kept() -> None:
    """Server URLs appear in connection errors; their userinfo must not."""
    assert scrub("connect to nats://auth:hunter2@10.0.0.1:4222 failed") == (
        "connect to nats://auth:[redacted]@10.0.0.1:4222 failed"
    )


def test_secret_named_keys_are_redacted_at_any_depth() -> None:
    """A request dumped whole (connect_opts) must lose pass, auth_token, jwt and sig."""
    event = {
        "connect_opts": {"user": "alice", "pass": "pw", "auth_token": "t", "sig": "s"},
        "items": [{"ldap_password": "x", "token_id": "kept"}],
    }
    assert redact_value(event) == {
        "connect_opts": {
            "user": "alice",
            "pass": REDACTED,
            "auth_token": REDACTED,
            "sig": REDACTED,
        },
        "items": [{"ldap_password": REDACTED, "token_id": "kept"}],
    }


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    with captured_logs() as buffer:
        yield buffer


def test_rendered_lines_including_tracebacks_and_stdlib_logs_hold_no_secret(
    output: io.StringIO,
) -> None:
    """What reaches stdout is what counts: structlog events, exceptions, library logs."""
    log = structlog.get_logger("test")
    log.info("login", password="pw-123", detail=f"seed {SEED}")
    try:
        _fail()
    except ValueError:
        log.exception("failed")
    logging.getLogger("nats.aio.client").warning("reconnecting with %s", API_TOKEN)
    text = output.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["event"] for line in lines][:2] == ["login", "failed"]
    assert lines[-1]["logger"] == "nats.aio.client"
    for secret in ("pw-123", SEED, TOKEN_JWT, API_TOKEN):
        assert secret not in text


def _fail() -> None:
    raise ValueError(f"bad token {TOKEN_JWT}")


def _audit_event(**overrides: object) -> dict[str, object]:
    from callout.observability.audit import drop_event  # noqa: PLC0415 - one test's helper

    event: dict[str, object] = drop_event("malformed", "bad request", request=None, seconds=0.1)
    event.update(overrides)
    return event


def test_the_direct_audit_line_is_the_line_structlog_would_write() -> None:
    """The hot path skips structlog's chain; SIEM parsers must not see the difference."""
    from callout.observability.audit import AuditLog  # noqa: PLC0415 - one test's import

    event = _audit_event(client_name=f"app {API_TOKEN}", detail="ok", principal="alice")
    with captured_logs("info") as direct_output:
        assert logs.direct_json() is not None
        AuditLog().emit(event)
    with captured_logs("info") as chain_output:
        logs._direct = None  # force the structlog chain for comparison
        AuditLog().emit(event)
    direct, chain = (json.loads(out.getvalue()) for out in (direct_output, chain_output))
    assert direct.pop("timestamp").endswith("Z")
    chain.pop("timestamp")
    assert direct == chain
    assert direct["level"] == "warning"
    assert API_TOKEN not in direct_output.getvalue()


def test_a_bound_context_variable_reaches_every_audit_output() -> None:
    """Whichever path renders the line (direct or the structlog chain), and in the event the
    JetStream sink gets, a variable bound with structlog.contextvars is there."""
    from callout.observability.audit import AuditLog  # noqa: PLC0415 - one test's import

    sunk: list[dict[str, object]] = []
    audit = AuditLog(sink=sunk.append)
    with structlog.contextvars.bound_contextvars(trace_id="trace-7", detail="not this one"):
        with captured_logs("info") as direct_output:
            assert logs.direct_json() is not None
            audit.emit(_audit_event())
        with captured_logs("info") as chain_output:
            logs._direct = None  # force the structlog chain
            audit.emit(_audit_event())
    for output in (direct_output, chain_output):
        line = json.loads(output.getvalue())
        assert (line["trace_id"], line["detail"]) == ("trace-7", "bad request")
    assert [(e["trace_id"], e["detail"]) for e in sunk] == [("trace-7", "bad request")] * 2


def test_the_direct_writer_honours_the_level_and_steps_aside_for_capture_logs() -> None:
    """Below the configured level nothing is written; under capture_logs the chain runs."""
    from callout.observability.audit import AuditLog  # noqa: PLC0415 - one test's import

    with captured_logs("error") as output:
        AuditLog().emit(_audit_event())
    assert output.getvalue() == ""
    with captured_logs("info"), structlog.testing.capture_logs() as captured:
        assert logs.direct_json() is None
        AuditLog().emit(_audit_event())
    assert captured[0]["event"] == "auth_decision"
    assert logs.direct_json() is None  # captured_logs restored the defaults


class _CountingStream(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


async def test_audit_lines_of_one_loop_iteration_are_flushed_once() -> None:
    """A burst of logins costs one write call, and no line waits past the loop iteration."""
    from callout.observability.audit import AuditLog  # noqa: PLC0415 - one test's import

    stream = _CountingStream()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("info", "json", stream=stream, cache=False)
        audit = AuditLog()
        for _ in range(5):
            audit.emit(_audit_event())
        assert len(stream.getvalue().splitlines()) == 5
        assert stream.flushes == 0
        await asyncio.sleep(0)
        assert stream.flushes == 1
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)


def test_watchfiles_change_notices_are_not_logged() -> None:
    """watchfiles says "1 change detected" at info on every change; the reload's own line is
    what operators need."""
    with captured_logs("info") as buffer:
        logging.getLogger("watchfiles.main").info("1 change detected")
        logging.getLogger("watchfiles.main").warning("watch failed")
    assert "change detected" not in buffer.getvalue()
    assert "watch failed" in buffer.getvalue()


_KEYS = ["detail", "principal", "password", "ldap_password", "Auth_Token", "request_id", "reason"]
_VALUES = [SEED, TOKEN_JWT, ARGON, API_TOKEN, "Bearer abc.def-ghi", "short", ""]


@given(
    st.dictionaries(
        st.sampled_from(_KEYS) | st.text(max_size=12),
        st.recursive(
            st.sampled_from(_VALUES)
            | st.text(max_size=30)
            | st.integers()
            | st.floats(allow_nan=False)
            | st.booleans()
            | st.none()
            | st.binary(max_size=40).map(lambda raw: raw + SEED.encode()),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=3)
            ),
            max_leaves=6,
        ),
        max_size=8,
    )
)
def test_the_redaction_shortcuts_change_nothing(event: dict[str, object]) -> None:
    """`redact` decides short strings, numbers and known keys without the full scan: its
    result is the full scan's (`redact_value`) for every key the service did not generate."""
    expected = {
        key: value
        if key in logs._GENERATED
        else REDACTED
        if logs.is_secret_key(key)
        else redact_value(value)
        for key, value in event.items()
    }
    assert logs.redact(None, "", dict(event)) == expected


def test_the_table_of_key_decisions_is_bounded_and_still_right_beyond_it() -> None:
    """Hostile or endless key names cannot grow the table; keys past the bound are still
    decided (and a secret-named one still redacted)."""
    try:
        for number in range(logs._MAX_KEY_ACTIONS + 50):
            logs.redact(None, "", {f"key_{number}": "value"})
        assert len(logs._key_actions) <= logs._MAX_KEY_ACTIONS
        late = {"late_password": "pw", "late_detail": f"seed {SEED}", "late_number": 3}
        redacted = logs.redact(None, "", late)
    finally:
        logs._key_actions.clear()  # the table refills with the keys in use
    assert redacted == {
        "late_password": REDACTED,
        "late_detail": f"seed {REDACTED}",
        "late_number": 3,
    }
