"""structlog set-up: JSON lines on stdout (console on a TTY), stdlib and nats-py logs routed
through the same processors, and a redaction step so no secret reaches a log line."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

# Keys whose values are secrets wherever they appear in an event (any nesting level).
SECRET_KEYS = frozenset(
    {"pass", "password", "auth_token", "token", "jwt", "sig", "seed", "secret", "user_jwt"}
)
_REDACTED = "[redacted]"


def _redact_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _REDACTED if key in SECRET_KEYS else _redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: replace the values of secret-named keys, at any depth."""
    for key in list(event):
        if key in SECRET_KEYS:
            event[key] = _REDACTED
        elif isinstance(event[key], dict | list | tuple):
            event[key] = _redact_value(event[key])
    return event


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and stdlib logging once, at start-up."""
    out = stream or sys.stdout
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
