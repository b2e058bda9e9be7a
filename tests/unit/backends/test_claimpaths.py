"""Claim paths and `require` rules over plain decoded claims, shaped like real tokens."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from callout.backends.claimpaths import claim, failed_rule, passes, strings
from callout.settings.claimrules import ClaimRule, RequireRules, pin_problem, pins

KUBERNETES = {
    "aud": ["nats"],
    "sub": "system:serviceaccount:payments:api",
    "kubernetes.io": {
        "namespace": "payments",
        "serviceaccount": {"name": "api", "uid": "5f1c"},
        "pod": {"name": "api-7d9f", "uid": "a1b2"},
    },
}
RULES: TypeAdapter[RequireRules] = TypeAdapter(RequireRules)


def rule(value: Any) -> ClaimRule:
    """A rule as the settings parse it from YAML."""
    return RULES.validate_python({"x": value})["x"]


def test_dotted_paths_read_keys_that_contain_dots() -> None:
    """Kubernetes nests its claims under the key `kubernetes.io`: no quoting needed."""
    assert claim(KUBERNETES, "kubernetes.io.namespace") == "payments"
    assert claim(KUBERNETES, "kubernetes.io.serviceaccount.name") == "api"
    assert claim(KUBERNETES, "kubernetes.io.nothing") is None
    assert claim({"a": {"b": "short"}, "a.b": "long"}, "a.b") == "long"  # longest key first


def test_a_number_indexes_a_list_and_never_reads_past_its_end() -> None:
    """Paths reach into arrays of objects; an index out of range is simply absent."""
    claims = {"items": [{"name": "first"}, {"name": "second"}]}
    assert claim(claims, "items.1.name") == "second"
    assert claim(claims, "items.2.name") is None
    assert claim(claims, "items.name") is None


@pytest.mark.parametrize(
    ("value", "written", "expected"),
    [
        ("org/app", "org/app", True),
        ("org/app-fork", "org/app", False),
        ("refs/heads/main", ["refs/heads/main", "refs/heads/release"], True),
        ("refs/heads/dev", ["refs/heads/main", "refs/heads/release"], False),
        ("refs/tags/v1.2", {"glob": "refs/tags/v*"}, True),
        ("refs/heads/v1", {"glob": ["refs/tags/v*", "refs/heads/main"]}, False),
        ("ORG/app", {"glob": "org/*"}, False),
        (["nats-admin", "offline_access"], "nats-admin", True),
        (["offline_access"], "nats-admin", False),
        (True, "true", True),
        (1234, "1234", True),
        ({"nested": "object"}, {"glob": "*"}, False),
        (None, {"glob": "*"}, False),
    ],
    ids=[
        "exact",
        "exact-no-prefix",
        "any-of",
        "any-of-miss",
        "glob",
        "glob-list-miss",
        "glob-case",
        "list-claim",
        "list-claim-miss",
        "bool",
        "int",
        "object",
        "absent",
    ],
)
def test_rules_compare_exactly_any_of_or_by_glob(value: Any, written: Any, expected: bool) -> None:
    """A pin must be exact unless written as a glob; lists pass on one item; absent fails."""
    assert passes(value, rule(written)) is expected


def test_the_first_failing_rule_is_named_and_all_must_hold() -> None:
    """The deny names the path (never the value) of the rule that failed."""
    rules = RULES.validate_python(
        {"kubernetes.io.namespace": "payments", "kubernetes.io.serviceaccount.name": "worker"}
    )
    assert failed_rule(KUBERNETES, rules) == "kubernetes.io.serviceaccount.name"
    assert failed_rule(KUBERNETES, RULES.validate_python({"sub": {"glob": "*:payments:*"}})) is None


def test_only_rules_on_workload_claims_count_as_pins() -> None:
    """aud/iss say nothing about who; a bare * pins nothing; org/* is a real pin."""
    assert pins(RULES.validate_python({"aud": "nats", "sub": {"glob": "*"}})) == []
    assert pins(RULES.validate_python({"repository": {"glob": "org/*"}})) == ["repository"]
    unpinned = pin_problem("https://token.actions.githubusercontent.com", {}, None)
    assert unpinned is not None
    assert "allow_any_subject" in unpinned
    assert pin_problem("https://idp", {}, "a dev realm with one user (SEC-9)") is None


def test_a_group_claim_that_is_an_object_gives_its_keys() -> None:
    """Zitadel lists project roles as the keys of an object; values (org ids) are not groups."""
    roles = {"nats-publisher": {"2310": "acme.zitadel.cloud"}, "": {}, "reader": {}}
    claims = {"urn:zitadel:iam:org:project:roles": roles}
    assert strings(claim(claims, "urn:zitadel:iam:org:project:roles")) == [
        "nats-publisher",
        "reader",
    ]
    assert strings(["a", "", 3, "b"]) == ["a", "b"]
    assert strings(7) == []
