"""Subject matching as nats-server applies permissions: wildcards, containment, deny wins."""

from __future__ import annotations

import pytest

from callout.policy.subjects import covers, overlaps, subject_verdict


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("app.>", "app.orders.created", True),
        ("app.>", "app", False),
        ("app.*", "app.orders", True),
        ("app.*", "app.orders.created", False),
        ("app.*.created", "app.orders.created", True),
        (">", "anything.at.all", True),
        ("app.>", "app.*", True),  # containment for wildcard subjects
        ("app.*", "app.>", False),  # '>' is wider than '*'
        ("app.orders", "app.*", False),
        ("user.{{user.name}}.>", "user.{{user.name}}.x", True),
        ("user.*.>", "user.{{user.name}}.x", True),
    ],
)
def test_covers(pattern: str, subject: str, expected: bool) -> None:
    """Policy tests and lint depend on exactly NATS's matching rules."""
    assert covers(pattern, subject) is expected


def test_deny_wins_and_queue_entries_only_admit_their_queue() -> None:
    """A queue-restricted grant must not allow a plain subscription."""
    allow, deny = ("app.>", "jobs.* workers"), ("app.secret.>",)
    assert subject_verdict(allow, deny, "app.orders").allowed
    assert subject_verdict(allow, deny, "app.secret.key").entry == "app.secret.>"
    assert not subject_verdict(allow, deny, "jobs.build").allowed
    assert subject_verdict(allow, deny, "jobs.build workers").allowed
    assert subject_verdict(allow, deny, "other").entry == ""


def test_overlaps_finds_a_common_subject() -> None:
    """Two entries overlap when some literal subject matches both."""
    assert overlaps("app.*.x", "app.orders.>")
    assert not overlaps("app.a", "app.b")
    assert not overlaps("app", "app.>")
