"""Real servers for the backend tests: an OpenLDAP slapd and a JWKS over HTTP, on 127.0.0.1.

Without slapd the LDAP tests skip with the command that installs it, except under CI
(``CI=true``), where they fail: the suite must not go green by not running them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.backends.idp import JwksServer, SigningKey
from tests.integration.backends.slapd import (
    GROUPS,
    PEOPLE,
    SERVICE_DN,
    SERVICE_PASSWORD,
    Slapd,
    find_slapd,
)


def _slapd_binary() -> str:
    binary = find_slapd()
    if binary is None or shutil.which("ldapadd") is None:
        message = (
            "slapd or ldap-utils is not installed: apt-get install slapd ldap-utils"
            " (`make check` installs them as root: .ci/system-deps)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def _start(directory: Path) -> Slapd:
    return Slapd(directory, _slapd_binary()).create()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """The shared directory; tests must not stop or change it (use `own_slapd` for that)."""
    server = _start(tmp_path_factory.mktemp("slapd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_slapd(tmp_path: Path) -> Iterator[Slapd]:
    """A directory of this test's own, to stop, freeze and restart."""
    server = _start(tmp_path / "slapd")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def bind_password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "ldap-bind"
    path.write_text(SERVICE_PASSWORD)
    path.chmod(0o600)
    return path


def ldap_backend(server: Slapd, password_file: Path, **changes: Any) -> dict[str, Any]:
    """The `backends:` item for ``server``: plain ldap:// on loopback unless changed."""
    return {
        "type": "ldap",
        "urls": [server.url],
        "allow_plaintext": True,
        "bind_dn": SERVICE_DN,
        "bind_password_file": str(password_file),
        "user_base": PEOPLE,
        "attributes": ["departmentNumber"],
        "groups": {"base": GROUPS, "nested": True},
        **changes,
    }


@pytest.fixture(scope="session")
def idp_keys() -> tuple[SigningKey, SigningKey]:
    """An RSA and an EC key: the identity provider's current signing keys."""
    return SigningKey.rsa("rsa-1"), SigningKey.ec("ec-1")


@pytest.fixture
def jwks(idp_keys: tuple[SigningKey, SigningKey]) -> Iterator[JwksServer]:
    server = JwksServer(*idp_keys).start()
    try:
        yield server
    finally:
        server.stop()
