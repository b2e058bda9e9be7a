"""OIDC issuer settings: discovery by issuer URL, `require` rules, and the workload pin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callout.errors import ConfigError
from callout.settings import OidcBackendSettings, OidcIssuerSettings, load_settings

GITHUB = "https://token.actions.githubusercontent.com"


def issuer(**values: Any) -> OidcIssuerSettings:
    (backend,) = load_settings(
        None,
        keys={"issuer_seed_file": "/x"},
        accounts=["APP"],
        backends=[{"type": "oidc", "issuers": [{"audience": ["nats"], **values}]}],
    ).backends
    assert isinstance(backend, OidcBackendSettings)
    return backend.issuers[0]


def refused(**values: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        issuer(**values)
    return str(caught.value)


def test_an_issuer_without_a_key_location_is_discovered_from_its_url() -> None:
    """GitHub and Keycloak publish their key URL in their metadata: the issuer URL is enough."""
    found = issuer(issuer=GITHUB, require={"repository": "org/app"})
    assert found.discovery
    assert not issuer(issuer=GITHUB, jwks_file="/j", require={"repository": "org/app"}).discovery


@pytest.mark.parametrize(
    "url",
    [
        "http://idp.example.org",
        "ftp://idp.example.org",
        "system:serviceaccount",
        "http://",
        "http://127.0.0.1@idp.example.org/realms/x",
        "http://localhost.idp.example.org/realms/x",
    ],
    ids=["http", "ftp", "no-url", "no-host", "userinfo-lookalike", "host-lookalike"],
)
def test_discovery_needs_https_except_on_loopback(url: str) -> None:
    """Keys found over plain HTTP could be anyone's; only a local IdP may skip TLS."""
    assert "must be https://" in refused(issuer=url, require={"sub": "x"})


def test_a_loopback_issuer_may_be_discovered_over_http() -> None:
    """A sidecar IdP, or the tests' stand-in one."""
    assert issuer(issuer="http://127.0.0.1:8080/realms/x", require={"sub": "x"}).discovery


def test_an_issuer_with_no_workload_pin_is_refused_with_what_to_do() -> None:
    """Trusting GitHub's issuer alone would admit every repository on GitHub."""
    message = refused(issuer=GITHUB, audience=["nats"])
    assert "no require rule on a workload claim" in message
    assert "allow_any_subject" in message
    assert "no require rule" in refused(issuer=GITHUB, require={"aud": "nats", "iss": GITHUB})
    assert "no require rule" in refused(issuer=GITHUB, require={"repository": {"glob": "*"}})


def test_trusting_every_subject_needs_a_written_reason() -> None:
    """An acknowledgement is explicit and says why; an empty one is not an acknowledgement."""
    assert issuer(issuer=GITHUB, allow_any_subject="one private IdP (SEC-12)").require == {}
    assert "at least 1 character" in refused(issuer=GITHUB, allow_any_subject="")


def test_require_rules_are_values_lists_or_globs_only() -> None:
    """A typo in a rule's shape must not turn into a rule that always passes."""
    assert "glob" in refused(issuer=GITHUB, require={"ref": {"regex": "refs/.*"}})
    assert "at least 1 item" in refused(issuer=GITHUB, require={"ref": []})
    assert "pattern" in refused(issuer=GITHUB, require={".ref": "x"})


def test_the_pin_error_names_the_settings_file_and_line(tmp_path: Path) -> None:
    """`policy check --config` and `serve` stop with exit 78 at the issuer's line."""
    settings = tmp_path / "callout.yaml"
    settings.write_text(
        "keys: {issuer_seed_file: /x}\naccounts: [APP]\nbackends:\n  - type: oidc\n"
        f"    issuers:\n      - issuer: {GITHUB}\n        audience: [nats]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(settings)
    assert f"{settings}:6: backends.0.issuers.0: issuer '{GITHUB}' has no require" in str(
        caught.value
    )
