"""A known leak of nats-py, contained: when a reconnect reaches a server but its handshake
fails (the node is stopping or starting), nats-py opens the next connection over the old one
without closing it, and the garbage collector later closes that socket with a
``ResourceWarning``. Tests that stop NATS nodes under in-process clients ignore exactly that
warning and collect the garbage in their own teardown, so it is never blamed on the next test."""

from __future__ import annotations

import gc

import pytest

LEAKED_RECONNECT_SOCKET = pytest.mark.filterwarnings(
    "ignore:unclosed <StreamWriter:ResourceWarning"
)


def collect_leaked_sockets() -> None:
    """Run the collector now, while this test's warning filter holds."""
    gc.collect()
