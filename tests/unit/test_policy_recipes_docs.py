"""The OIDC recipes and protocol-aware examples of policies/README.md are real: every
settings block loads as service settings, every policy block loads as a policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from callout.credentials.passwords import hash_password
from callout.policy import load_policy
from callout.settings import OidcBackendSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
_FIRST, _LAST = "## OIDC recipes", "## Regenerating the schema"
_ELIDED_HASH = "$argon2id$v=19$m=19456,t=2,p=1$..."


def _blocks() -> list[str]:
    text = (ROOT / "policies" / "README.md").read_text()
    section = text[text.index(_FIRST) : text.index(_LAST)]
    return re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)


BLOCKS = _blocks()
SETTINGS = [block for block in BLOCKS if block.startswith("backends:")]
POLICIES = [block for block in BLOCKS if block.startswith("version: 1")]


def test_every_example_is_a_settings_or_a_policy_block() -> None:
    """Nothing in these sections escapes the checks below."""
    assert len(SETTINGS) == 4
    assert len(POLICIES) == 6
    assert len(SETTINGS) + len(POLICIES) == len(BLOCKS)


@pytest.mark.parametrize("block", SETTINGS, ids=lambda b: b.split("issuer: ")[1].split()[0])
def test_recipe_settings_load_with_their_pin(block: str) -> None:
    """Each recipe's issuer passes the settings checks, including the workload pin."""
    backends = yaml.safe_load(block)["backends"]
    loaded = load_settings(
        None, keys={"issuer_seed_file": "/x"}, accounts=["APP", "OPS"], backends=backends
    )
    (backend,) = loaded.backends
    assert isinstance(backend, OidcBackendSettings)
    assert all(issuer.require for issuer in backend.issuers)


@pytest.mark.parametrize("block", POLICIES, ids=lambda b: b.split("roles:\n  ")[1].split(":")[0])
def test_example_policies_load(block: str, tmp_path: Path) -> None:
    """Each policy example passes `policy check`'s loader (elided hashes made real)."""
    text = block.replace(_ELIDED_HASH, hash_password("example-only"))
    (tmp_path / "policy.yaml").write_text(text)
    load_policy(tmp_path)
