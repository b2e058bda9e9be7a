"""A simulated certificate login for `policy explain --cert-file`: the PEM chain a client
would present, put where nats-server puts it (``client_tls.verified_chains``)."""

from __future__ import annotations

import dataclasses
import re

from callout.protocol.claims import AuthRequest, ClientTLS

MAX_CHAIN_FILE = 256 * 1024  # bytes; far above any real chain, a bound on what is read
_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----\r?\n?", re.DOTALL
)


def pem_blocks(text: str) -> tuple[str, ...]:
    """Each ``CERTIFICATE`` block of ``text``, in order (anything between is ignored)."""
    return tuple(block if block.endswith("\n") else block + "\n" for block in _BLOCK.findall(text))


def with_certificate(request: AuthRequest, chain: tuple[str, ...]) -> AuthRequest:
    """``request`` as a TLS connection that presented ``chain`` (leaf first)."""
    tls = ClientTLS(version="1.3", cipher="explain", verified_chains=(chain,))
    return dataclasses.replace(request, tls=tls)
