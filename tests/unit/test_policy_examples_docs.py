"""The worked examples of policies/README.md ("one per backend") load together as one policy
directory, as they are meant to be read: the LDAP and token examples use the static example's
roles and defaults. Elided hashes are made real; nothing else is changed."""

from __future__ import annotations

import re
from pathlib import Path

from callout.credentials.passwords import hash_password
from callout.credentials.tokens import hmac_hash
from callout.policy import load_policy

README = Path(__file__).resolve().parents[2] / "policies" / "README.md"
_FIRST, _LAST = "## Worked examples, one per backend", "## OIDC recipes"


def _blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(_FIRST) : text.index(_LAST)]
    return re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)


def test_the_worked_examples_load_as_one_policy(tmp_path: Path) -> None:
    """Static, LDAP, token and OIDC examples: every role they name exists, every hash parses."""
    blocks = _blocks()
    assert len(blocks) == 4
    for number, block in enumerate(blocks):
        text = block.replace("$argon2id$v=19$m=19456,t=2,p=1$...", hash_password("example-only"))
        text = text.replace('"hmac-sha256:…"', f'"{hmac_hash(b"pepper", "nac_ci-deploy_x")}"')
        (tmp_path / f"example-{number}.yaml").write_text(text, encoding="utf-8")
    snapshot = load_policy(tmp_path)
    assert set(snapshot.users) == {"alice"}
    assert set(snapshot.tokens) == {"ci-deploy"}
    assert {"cn=nats-users,ou=groups,dc=example,dc=org", "idp:nats-readers"} <= set(snapshot.groups)
    assert snapshot.deny_groups == {
        "cn=nats-blocked,ou=groups,dc=example,dc=org",
        "idp:contractors-suspended",
    }
