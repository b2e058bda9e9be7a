"""`service.event_loop`: asyncio's loop, or uvloop from the optional extra."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from callout.cli.run import loop_factory
from callout.errors import ConfigError


def test_asyncio_is_the_default_loop() -> None:
    assert loop_factory("asyncio") is None


def test_uvloop_runs_the_service_loop() -> None:
    factory = loop_factory("uvloop")
    assert factory is not None
    with asyncio.Runner(loop_factory=factory) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)


def test_uvloop_missing_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'nats-auth-callout\[uvloop\]'"):
        loop_factory("uvloop")
