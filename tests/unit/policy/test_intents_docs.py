"""The intent examples of policies/README.md load, and its inbox-prefix recipe is the one the
service uses."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from callout.decision import Identity
from callout.policy.intents import inbox_prefix
from tests.unit.policy.helpers import NOW, request, snapshot

README = Path(__file__).parents[3] / "policies" / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def test_every_intent_example_loads_and_grants(tmp_path: Path) -> None:
    (example,) = _blocks(_section("Grants by intent"), "yaml")
    roles = list(yaml.safe_load(example)["roles"])
    groups = "groups:\n  everyone: {roles: [" + ", ".join(roles) + "]}\n"
    policy = snapshot(tmp_path, example + groups)
    decision = policy.authorize(Identity("alice", "ldap", groups=("everyone",)), request(), NOW)
    assert decision.grant is not None, decision
    granted = decision.grant.permissions
    assert "$KV.profiles.users.alice.>" in granted.pub_allow
    assert "$JS.API.CONSUMER.MSG.NEXT.ORDERS.worker" in granted.pub_allow
    assert f"{inbox_prefix('ldap', 'alice')}.>" in granted.sub_allow
    assert granted.has_resp  # echo-server answers through response permissions


def test_the_documented_inbox_prefix_recipe_matches_the_service() -> None:
    (recipe,) = _blocks(_section("Grants by intent"), "python")
    scope: dict[str, object] = {}
    exec(recipe, scope)  # noqa: S102 - our own README's snippet, the point of the test
    assert scope["prefix"] == inbox_prefix("static", "alice")
