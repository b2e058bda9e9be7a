"""The JSON schema of a policy file, generated from the models for editors and CI.

``policies/schema.json`` is this output; a unit test fails when the committed file drifts.
Regenerate with ``callout policy schema --output policies/schema.json``.
"""

from __future__ import annotations

import json
from typing import Any

from callout.policy.models import PolicyFile

SCHEMA_ID = "https://github.com/nats-auth-callout/policies/schema.json"
REGENERATE = "callout policy schema --output policies/schema.json"


def policy_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of one policy file."""
    schema = PolicyFile.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "nats-auth-callout policy file",
        **{key: value for key, value in schema.items() if key != "title"},
    }


def policy_schema_text() -> str:
    """The schema as the committed file holds it: sorted keys, two-space indent, newline."""
    return json.dumps(policy_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
