"""structlog set-up: JSON lines on stdout (console on a TTY), stdlib and nats-py logs routed
through the same processors, and a redaction step so no secret reaches a log line.

Redaction works twice over: the values of secret-named keys are replaced at any depth, and
every string anywhere in an event (the message and tracebacks included) is scrubbed of
anything *shaped* like a secret: JWTs (``eyJ…``), nkey seeds (``S…``, 58 characters), PHC
password hashes (argon2, bcrypt), bearer tokens, long base64 runs (signatures, boxes),
random-looking runs of 32+ characters mixing cases and digits (API token secrets; public
nkeys are upper-case only and stay readable) and the password in
``scheme://user:password@host``. The redaction runs last, just before rendering.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Mapping, MutableMapping, Sequence
from functools import lru_cache
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import Processor

# Keys whose values are secrets wherever they appear in an event (any nesting level).
SECRET_KEYS = frozenset(
    {
        "pass",
        "password",
        "passwd",
        "auth_token",
        "token",
        "jwt",
        "user_jwt",
        "sig",
        "signature",
        "seed",
        "nkey_seed",
        "secret",
        "client_secret",
        "pepper",
        "bearer",
        "authorization",
        "credentials",
        "creds",
        "private_key",
    }
)
_SECRET_SUFFIXES = ("_password", "_secret", "_seed", "_token", "_jwt")
REDACTED = "[redacted]"

_SHAPES = re.compile(
    "|".join(
        (
            r"eyJ[A-Za-z0-9_=-]{6,}(?:\.[A-Za-z0-9_=-]*){0,2}",  # JWT (or one JOSE segment)
            r"\bS[A-Z][A-Z2-7]{56}\b",  # nkey / xkey seed
            r"\$argon2(?:id|i|d)\$[^\s\"']+",  # argon2 PHC string
            r"\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}",  # bcrypt
            r"(?i:bearer)\s+[^\s\"',;]+",  # HTTP bearer credentials
            r"[A-Za-z0-9+/_-]{80,}={0,2}",  # signatures, boxes, long opaque secrets
        )
    )
)
# Random-looking runs (API token secrets): 32+ characters mixing lower case, upper case and
# digits. Public nkeys and ids (upper case and digits) and hex digests stay readable.
_RUN = re.compile(r"[A-Za-z0-9_-]{32,}")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@", re.IGNORECASE)
_SHORTEST_SECRET = 20  # nothing the shapes match is shorter; skip the regex for short strings


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a secret (``password``, ``auth_token``, ``ldap_password``…)."""
    return isinstance(key, str) and _is_secret_name(key)


@lru_cache(maxsize=1024)  # the same few dozen keys on every line
def _is_secret_name(key: str) -> bool:
    name = key.lower()
    return name in SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def scrub(text: str) -> str:
    """``text`` with everything shaped like a secret replaced by ``[redacted]``."""
    if len(text) < _SHORTEST_SECRET:
        return text
    text = _SHAPES.sub(REDACTED, text)
    text = _RUN.sub(_random_run, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda match: f"{match['head']}{REDACTED}@", text)
    return text


def _random_run(match: re.Match[str]) -> str:
    run = match.group()
    mixed = not run.isupper() and not run.islower() and any(c.isdigit() for c in run)
    return REDACTED if mixed else run


def redact_value(value: Any) -> Any:
    """A copy of ``value`` with secret-named keys and secret-shaped strings redacted."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_secret_key(key) else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return scrub(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    return value


# Values the service itself produces and has validated: public nkeys (request ids, server ids),
# hex digests, enums, numbers and timestamps. They can never hold a secret, so the shape scan
# (the costly part of redaction, on every audit line) skips them.
_GENERATED = frozenset(
    {
        "audit_version",
        "decision",
        "reason",
        "request_id",
        "server_id",
        "policy_digest",
        "permissions_digest",
        "expires",
        "duration_s",
        "replied",
        "client_id",
        "timestamp",
        "level",
        "logger",
    }
)  # not "event": for stdlib and nats-py records it is the free-text message


# What `redact` does with a top-level key: keep its value as it is (`_GENERATED`), replace it
# (a secret name), or scan it. Decided once per key name and kept in a bounded table: events
# carry the same few dozen keys, and a key never seen before costs only its own check.
_KEEP, _HIDE, _SCAN = "keep", "hide", "scan"
_MAX_KEY_ACTIONS = 1024
_key_actions: dict[str, str] = {}
_PLAIN = frozenset({int, float, bool, type(None)})  # values no secret can hide in


def _key_action(key: object) -> str:
    if not isinstance(key, str):
        return _SCAN
    action = _key_actions.get(key)
    if action is None:
        action = _KEEP if key in _GENERATED else _HIDE if _is_secret_name(key) else _SCAN
        if len(_key_actions) < _MAX_KEY_ACTIONS:  # beyond the bound: decided every time
            _key_actions[key] = action
    return action


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: secret-named keys and secret-shaped strings, at any depth.

    The same result as `redact_value` on every value not in `_GENERATED`, with the common
    cases decided here: a string shorter than any secret shape and a number, a bool or None
    are kept without a call (`scrub` would return them unchanged)."""
    known = _key_actions.get
    for key, value in event.items():  # values are replaced in place: the keys never change
        action = known(key)
        if action is None:
            action = _key_action(key)
        if action is _KEEP:
            continue
        if action is _HIDE:
            event[key] = REDACTED
        elif isinstance(value, str):
            if len(value) >= _SHORTEST_SECRET:
                event[key] = scrub(value)
        elif type(value) not in _PLAIN:
            event[key] = redact_value(value)
    return event


def _render_json(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode("utf-8")


class DirectJson:
    """Writes one hot event per request (the audit line) without structlog's bound logger.

    The line is the one the chain would render, because it runs the chain's own processors:
    the bound context variables (`merge_contextvars`), then the chain's tail (`redact` and the
    renderer), at about a third of the cost. Only the level and the UTC timestamp are added
    by cheaper equivalents of structlog's. Lines written on the event loop are flushed
    once per loop iteration rather than once per line (one write call for a burst of
    logins, in order with every other line on the same stream); elsewhere each line is
    flushed at once. It only writes while the structlog configuration it was made with is
    still in place (`current`); callers fall back to structlog otherwise.
    """

    def __init__(self, stream: TextIO, level: int, tail: Sequence[Processor]) -> None:
        self.level = level
        self._tail = tuple(tail)
        self._stream = stream
        self._flush_scheduled = False
        self._second = -1
        self._stamp = ""

    @property
    def current(self) -> bool:
        processors = structlog.get_config()["processors"]
        return bool(processors) and processors[-1] is self._tail[-1]

    def write(self, level: int, logger: str, event: str, fields: Mapping[str, Any]) -> None:
        if level < self.level:
            return
        line: Any = {"event": event, "logger": logger, **fields}
        line = structlog.contextvars.merge_contextvars(None, "", line)
        line["level"] = _level_name(level)
        line["timestamp"] = self._timestamp()
        for processor in self._tail:
            line = processor(None, "", line)
        self._stream.write(f"{line}\n")
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._stream.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._stream.flush()

    def _timestamp(self) -> str:
        """ISO 8601 UTC, always with microseconds (TimeStamper drops ``.000000``)."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1e6):06d}Z"


@lru_cache(maxsize=64)  # a handful of levels
def _level_name(level: int) -> str:
    return logging.getLevelName(level).lower()


_direct: DirectJson | None = None


def direct_json() -> DirectJson | None:
    """The direct JSON writer, when JSON logging is configured by `configure` and in force."""
    writer = _direct
    return writer if writer is not None and writer.current else None


def configure(
    level: str = "info", fmt: str = "auto", stream: TextIO | None = None, *, cache: bool = True
) -> None:
    """Configure structlog and stdlib logging once, at start-up.

    ``cache=False`` lets tests configure more than once in one process.
    """
    out = stream or sys.stdout
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if console
        else structlog.processors.JSONRenderer(serializer=_render_json)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tail: list[Processor] = [redact, renderer]
    numeric = logging.getLevelNamesMapping()[level.upper()]
    global _direct  # noqa: PLW0603 - one logging set-up per process, like structlog's own
    _direct = None if console else DirectJson(out, numeric, tail)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=cache,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    # watchfiles logs "N changes detected" at info on every change; our reload logs its outcome.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
