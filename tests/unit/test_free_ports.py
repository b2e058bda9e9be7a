"""Ports for the servers the development tools start: never from the range the kernel gives
outgoing connections (a client socket took a cluster port between pick and bind once), never the
same one twice in a row, never one that is held."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from callout.devserver import processes
from callout.devserver.processes import free_port, port_in_use


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_ports_come_from_below_the_ephemeral_range_and_differ() -> None:
    ports = [free_port() for _ in range(200)]
    below = processes._ports_below_ephemeral()  # empty where too few ports lie below the range
    expected = below or range(_ephemeral_low(), 65_536)
    assert below == range(10_000, _ephemeral_low()) or _ephemeral_low() < 11_000
    assert all(port in expected for port in ports), ports
    assert len(set(ports)) == len(ports)


def test_a_held_port_is_skipped() -> None:
    rotation = processes._PortRotation(range(20_000, 20_003))
    first = rotation.take_free()
    assert first is not None
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", first + 1 if first < 20_002 else 20_000))
        held = holder.getsockname()[1]
        assert port_in_use(held)
        picked = [rotation.take_free() for _ in range(4)]
    assert held not in picked
    assert set(picked) == {20_000, 20_001, 20_002} - {held}


def test_with_every_candidate_held_there_is_no_candidate() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        held = holder.getsockname()[1]
        assert processes._PortRotation(range(held, held + 1)).take_free() is None


def test_without_a_known_ephemeral_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "_rotation", processes._PortRotation(range(0)))
    port = free_port()
    assert port >= _ephemeral_low()
    assert not port_in_use(port)
