"""The advisory table: which server versions lack which fix, and the bounded version bands."""

from __future__ import annotations

import pytest

from callout.protocol.versions import (
    ADVISORIES,
    BANDS,
    BY_CODE,
    band,
    fix_for,
    open_advisories,
    parse_version,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.12.7", (2, 12, 7)),
        ("v2.14.0", (2, 14, 0)),
        ("2.12.7-RC.1", (2, 12, 6)),  # a release candidate may lack the release's fix
        ("2.14.0-beta", (2, 14, -1)),
        (" 2.10.4 ", (2, 10, 4)),
        ("", None),
        ("dev", None),
        ("2.12", None),
    ],
)
def test_versions_are_parsed_with_prereleases_below_their_release(
    text: str, expected: tuple[int, int, int] | None
) -> None:
    assert parse_version(text) == expected


def _codes(text: str) -> set[str]:
    return {advisory.code for advisory in open_advisories(parse_version(text))}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.10.3", {"xkey-broken", "mqtt-acl-bypass", "queue-deny-bypass", "overlapping-deny"}),
        ("2.10.4", {"mqtt-acl-bypass", "queue-deny-bypass", "overlapping-deny"}),
        ("2.11.14", {"mqtt-acl-bypass", "queue-deny-bypass", "overlapping-deny"}),
        ("2.11.15", {"queue-deny-bypass", "overlapping-deny"}),
        ("2.11.16", {"overlapping-deny"}),  # no 2.11 fix on record: counted as affected
        ("2.12.0-RC.1", {"mqtt-acl-bypass", "queue-deny-bypass", "overlapping-deny"}),
        ("2.12.5", {"mqtt-acl-bypass", "queue-deny-bypass", "overlapping-deny"}),
        ("2.12.6", {"queue-deny-bypass", "overlapping-deny"}),
        ("2.12.7", set()),
        ("2.14.0", set()),
        ("2.15.1", set()),
        ("3.0.0", set()),
    ],
)
def test_each_version_lacks_exactly_the_fixes_released_after_it(
    text: str, expected: set[str]
) -> None:
    """The table of README "Server versions", one release line at a time."""
    assert _codes(text) == expected


def test_an_unreadable_version_counts_as_lacking_every_fix() -> None:
    """Fail closed: a server that does not say what it is gets no benefit of the doubt."""
    assert _codes("") == {advisory.code for advisory in ADVISORIES}
    assert _codes("nightly") == {advisory.code for advisory in ADVISORIES}


def test_the_fix_named_is_on_the_same_line_or_the_next() -> None:
    queue = BY_CODE["queue-deny-bypass"]
    assert fix_for(queue, parse_version("2.12.3")) == "2.12.7"
    assert fix_for(queue, parse_version("2.11.2")) == "2.11.16"
    assert fix_for(queue, parse_version("2.10.20")) == "2.11.16"
    assert fix_for(BY_CODE["overlapping-deny"], parse_version("2.11.16")) == "2.12.7"
    assert fix_for(queue, None) == "2.14.0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.10.29", "2.10"),
        ("2.12.7", "2.12"),
        ("2.15.1", "2.15"),
        ("2.9.25", "older"),
        ("2.99.0", "newer"),
        ("3.0.0", "newer"),
        ("", "unknown"),
        ("2.13.0", "unknown"),  # between known lines: no label of its own
    ],
)
def test_bands_are_a_small_closed_set(text: str, expected: str) -> None:
    """The metric's label: whatever a server claims, one of BANDS."""
    assert band(parse_version(text)) == expected
    assert expected in BANDS
