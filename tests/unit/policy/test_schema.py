"""The committed JSON schema and example policies stay in step with the code."""

from __future__ import annotations

import json
from pathlib import Path

from callout.policy import check_policy
from callout.policy.schema import REGENERATE, policy_schema, policy_schema_text

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def test_committed_schema_matches_the_models() -> None:
    """Editors validate against policies/schema.json; a stale copy misleads security teams."""
    committed = (POLICIES / "schema.json").read_text(encoding="utf-8")
    assert committed == policy_schema_text(), f"policies/schema.json is stale; run: {REGENERATE}"


def test_schema_forbids_unknown_keys() -> None:
    """The editor should flag typos the loader will reject."""
    schema = policy_schema()
    assert schema["additionalProperties"] is False
    assert json.loads(policy_schema_text()) == schema


def test_example_policies_check_without_errors_or_warnings() -> None:
    """The examples are what people copy; they must be clean."""
    result = check_policy(POLICIES)
    assert (result.errors, result.warnings) == ([], [])


def test_example_files_point_editors_at_the_schema() -> None:
    """The first line wires up yaml-language-server."""
    for path in sorted(POLICIES.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=./schema.json", path.name
