"""A simulated certificate login for `policy explain --cert-file` and a policy test's
``cert_file``: the PEM chain a client would present, read from a file (bounded) and put where
nats-server puts it (``client_tls.verified_chains``)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from callout.protocol.claims import AuthRequest, ClientTLS

MAX_CHAIN_FILE = 256 * 1024  # bytes; far above any real chain, a bound on what is read
_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----\r?\n?", re.DOTALL
)


def pem_blocks(text: str) -> tuple[str, ...]:
    """Each ``CERTIFICATE`` block of ``text``, in order (anything between is ignored)."""
    return tuple(block if block.endswith("\n") else block + "\n" for block in _BLOCK.findall(text))


def read_chain(path: Path) -> tuple[str, ...]:
    """The certificates of the PEM file ``path``, leaf first. ValueError saying what is wrong
    (in words that never quote the file's contents)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CHAIN_FILE + 1)
    except OSError as error:
        raise ValueError(f"cannot read the certificate file: {error.strerror}") from None
    chain = pem_blocks(data[:MAX_CHAIN_FILE].decode("ascii", "replace"))
    if len(data) > MAX_CHAIN_FILE or not chain:
        raise ValueError("not a PEM certificate chain (leaf first)")
    return chain


def with_certificate(request: AuthRequest, chain: tuple[str, ...]) -> AuthRequest:
    """``request`` as a TLS connection that presented ``chain`` (leaf first)."""
    tls = ClientTLS(version="1.3", cipher="explain", verified_chains=(chain,))
    return dataclasses.replace(request, tls=tls)
