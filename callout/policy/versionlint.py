"""Warnings about rules a given nats-server version would not hold (`policy check
--server-version`).

Pure: a merged policy and a version in, `PolicyIssue`s out, each coded with the advisory
(`callout.protocol.versions`) and naming the release that fixes it. A fixed version gets no
warnings. What is looked at: subscribe denies (``queue-deny-bypass``), deny wildcards that
overlap an allow wildcard of the same identity (``overlapping-deny``), and grants that admit
MQTT connections (``mqtt-acl-bypass``). ``xkey-broken`` is a matter of the service's settings,
not of the policy (`xkey_warning`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from callout.errors import PolicyIssue
from callout.policy.compiler import Entry, Merged
from callout.policy.models import Grants
from callout.policy.subjects import overlaps, split_queue
from callout.protocol.versions import BY_CODE, Advisory, Version, fix_for

_MQTT = frozenset({"MQTT", "MQTT_WS"})
_SIDES = ("publish", "subscribe")


def _wildcard(subject: str) -> bool:
    return any(token in ("*", ">") for token in subject.split("."))


def _issue(
    entry: Entry[Any], advisory: Advisory, version: Version | None, message: str, *path: str | int
) -> PolicyIssue:
    fixed = fix_for(advisory, version)
    text = f"{message} ({advisory.source}; fixed in {fixed})"
    return replace(entry.issue(text, *path), code=advisory.code)


def _rules(grants: Grants, side: str) -> tuple[list[str], list[str]]:
    rules = getattr(grants, side)
    return (list(rules.allow), list(rules.deny)) if rules is not None else ([], [])


def _grant_entries(merged: Merged) -> Iterator[Entry[Any]]:
    yield from merged.roles.values()
    yield from merged.users.values()
    yield from merged.tokens.values()


def _queue_denies(entry: Entry[Any], version: Version | None, shown: str) -> list[PolicyIssue]:
    advisory = BY_CODE["queue-deny-bypass"]
    _, denies = _rules(entry.value, "subscribe")
    return [
        _issue(
            entry,
            advisory,
            version,
            f"subscribe deny {deny!r} can be bypassed with a queue subscription on"
            f" nats-server {shown}",
            "subscribe",
            "deny",
            index,
        )
        for index, deny in enumerate(denies)
    ]


def _mqtt(entry: Entry[Any], version: Version | None, shown: str) -> list[PolicyIssue]:
    types = set(entry.value.connection_types or ())
    if not types & _MQTT:
        return []
    message = (
        f"admits MQTT connections, which nats-server {shown} does not hold to their subject"
        " permissions"
    )
    advisory = BY_CODE["mqtt-acl-bypass"]
    return [_issue(entry, advisory, version, message, "connection_types")]


def _parts(entry: Entry[Any], merged: Merged) -> list[Entry[Any]]:
    """The entry (when it holds grants) and the roles it names."""
    own = [entry] if isinstance(entry.value, Grants) else []
    roles = getattr(entry.value, "roles", [])
    return own + [merged.roles[name] for name in roles if name in merged.roles]


def _overlapping(merged: Merged, version: Version | None, shown: str) -> list[PolicyIssue]:
    """Deny wildcards overlapping an allow wildcard the same identity holds, reported once
    where the deny is written."""
    advisory = BY_CODE["overlapping-deny"]
    holders: list[Entry[Any]] = [
        *merged.roles.values(),
        *merged.users.values(),
        *merged.tokens.values(),
        *merged.groups.values(),
    ]
    seen: set[tuple[int, str, int]] = set()
    out: list[PolicyIssue] = []
    for holder in holders:
        parts = _parts(holder, merged)
        for side in _SIDES:
            allows = [a for part in parts for a in _rules(part.value, side)[0]]
            for part in parts:
                for index, deny in enumerate(_rules(part.value, side)[1]):
                    key = (id(part), side, index)
                    if key in seen or not _wildcard(split_queue(deny)[0]):
                        continue
                    hit = next((a for a in allows if _overlap(deny, a)), None)
                    if hit is None:
                        continue
                    seen.add(key)
                    message = (
                        f"{side} deny {deny!r} overlaps allow {hit!r}; nats-server {shown}"
                        " may not enforce a deny wildcard that overlaps an allow wildcard"
                    )
                    out.append(_issue(part, advisory, version, message, side, "deny", index))
    return out


def _overlap(deny: str, allow: str) -> bool:
    deny_subject, _ = split_queue(deny)
    allow_subject, _ = split_queue(allow)
    return _wildcard(allow_subject) and overlaps(deny_subject, allow_subject)


def version_warnings(merged: Merged, version: Version | None, shown: str) -> list[PolicyIssue]:
    """Every rule of ``merged`` that nats-server ``version`` (as written: ``shown``) would not
    hold, for the advisories that version lacks a fix for."""
    out: list[PolicyIssue] = []
    if BY_CODE["queue-deny-bypass"].affects(version):
        for entry in _grant_entries(merged):
            out.extend(_queue_denies(entry, version, shown))
    if BY_CODE["overlapping-deny"].affects(version):
        out.extend(_overlapping(merged, version, shown))
    if BY_CODE["mqtt-acl-bypass"].affects(version):
        for entry in _grant_entries(merged):
            out.extend(_mqtt(entry, version, shown))
    return out


XKEY_CODE = "xkey-broken"


def xkey_warning(version: Version | None, shown: str) -> str | None:
    """The xkey advisory's message, for settings that configure an xkey."""
    advisory = BY_CODE[XKEY_CODE]
    if not advisory.affects(version):
        return None
    return (
        f"nats-server {shown} encrypts callout requests with an all-zero key"
        f" ({advisory.source}; fixed in {fix_for(advisory, version)})"
    )
