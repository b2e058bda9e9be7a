"""README "Running several replicas" says what the code does: its settings example loads, and
its least-privilege list is the one `callout.state.permissions` computes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from callout.settings import StateSettings
from callout.state.permissions import state_permissions

README = Path(__file__).resolve().parents[3] / "README.md"


def _section() -> str:
    return README.read_text().split("## Running several replicas", 1)[1].split("\n## ", 1)[0]


def test_the_settings_example_is_valid() -> None:
    block = re.search(r"```yaml\n(.*?)```", _section(), re.DOTALL)
    assert block is not None
    state = yaml.safe_load(block.group(1))["state"]
    assert StateSettings(**state).enabled


def test_the_least_privilege_list_is_what_the_code_needs() -> None:
    block = re.search(r"```text\n(.*?)```", _section(), re.DOTALL)
    assert block is not None
    documented = set(block.group(1).split())
    assert documented == set(state_permissions(StateSettings())["publish"])
