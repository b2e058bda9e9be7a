"""Subject syntax and template parsing, below the loader."""

from __future__ import annotations

import pytest

from callout.policy.templates import Template, check_subject, is_safe, parse_template


def test_plain_subject_parses_to_itself() -> None:
    """Subjects without holes stay strings, so most logins render nothing."""
    assert parse_template("app.>") == "app.>"


def test_template_splits_into_literals_and_variables() -> None:
    """Rendering is a join over precompiled parts."""
    parsed = parse_template("user.{{ user.name }}.>")
    assert isinstance(parsed, Template)
    assert parsed.parts == ("user.", ("user", "name"), ".>")


def test_server_tag_names_are_lower_cased() -> None:
    """nats-server lower-cases tags, so `Region` must find `region:eu`."""
    parsed = parse_template("{{server.tag.Region}}")
    assert isinstance(parsed, Template)
    assert parsed.variables == (("server", "tag", "region"),)


@pytest.mark.parametrize("text", ["a.{{user.name", "a.}}", "{{user.attr.a.b}}", "{{user}}"])
def test_malformed_templates_are_refused(text: str) -> None:
    """Half a template must not pass as literal text."""
    with pytest.raises(ValueError, match="template"):
        parse_template(text)


def test_wildcard_next_to_a_hole_is_refused() -> None:
    """`{{user.name}}*` is a literal token in NATS, almost surely not what was meant."""
    with pytest.raises(ValueError, match="whole tokens"):
        check_subject("a.{{user.name}}*", queue_allowed=False)


def test_queue_group_is_only_allowed_on_subscribe() -> None:
    """Publish subjects never contain a space."""
    assert check_subject("jobs.* workers", queue_allowed=True) == "jobs.* workers"
    with pytest.raises(ValueError, match="whitespace"):
        check_subject("jobs.* workers", queue_allowed=False)


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("alice", True),
        ("sensor-1", True),
        ("a.>", False),
        ("*", False),
        ("", False),
        ("a b", False),
        ("a\nb", False),
        ("a\x7f", False),
    ],
)
def test_is_safe_rejects_values_that_change_subject_meaning(value: str, safe: bool) -> None:
    """The sanitiser is the only barrier between a user name and a wildcard grant."""
    assert is_safe(value) is safe
