"""What a policy change does to each identity: who gains or loses which permissions.

Both trees are compiled, so role edits show up on every user and group holding the role.
For each identity (static user or mapped group) `diff` compares what it ends up with:
account, permission entries (as written, templates unrendered), response permission, JWT
lifetime, login conditions, tags, the credential, and system-account placement. Each change
says whether it widens (``gains``) or narrows (``loses``) access, or just changes it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from callout.policy.compiler import StaticUser
from callout.policy.rules import Rules, Subject
from callout.policy.snapshot import PolicySnapshot
from callout.policy.templates import Template

Effect = Literal["gains", "loses", "changes", "added", "removed"]


@dataclass(frozen=True, slots=True)
class Change:
    identity: str  # "user alice" / "group devs"
    effect: Effect
    what: str


def _texts(subjects: tuple[Subject, ...]) -> frozenset[str]:
    return frozenset(s.text if isinstance(s, Template) else s for s in subjects)


def duration_text(seconds: int | None) -> str:
    """``90`` → ``90s``, ``3600`` → ``1h``: how policy files write durations."""
    if seconds is None:
        return "none"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _credential(user: StaticUser) -> str:
    if user.nkey is not None:
        return f"nkey {user.nkey}"
    digest = hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:12]
    return f"password hash #{digest}"


def _identities(snapshot: PolicySnapshot) -> dict[str, tuple[Rules, str]]:
    out: dict[str, tuple[Rules, str]] = {}
    for name, user in snapshot.users.items():
        out[f"user {name}"] = (user.rules, _credential(user))
    for name, rules in snapshot.groups.items():
        out[f"group {name}"] = (rules, "")
    return out


def _summary(rules: Rules) -> str:
    parts = [f"account {rules.account}"]
    for label, subjects in (
        ("publish allow", rules.pub_allow),
        ("subscribe allow", rules.sub_allow),
    ):
        if subjects:
            parts.append(f"{label} {', '.join(sorted(_texts(subjects)))}")
    return "; ".join(parts)


def _lists(name: str, old: Rules, new: Rules) -> list[Change]:
    out: list[Change] = []
    for side, kind, before, after in (
        ("publish", "allow", old.pub_allow, new.pub_allow),
        ("publish", "deny", old.pub_deny, new.pub_deny),
        ("subscribe", "allow", old.sub_allow, new.sub_allow),
        ("subscribe", "deny", old.sub_deny, new.sub_deny),
    ):
        a, b = _texts(before), _texts(after)
        added: Effect = "gains" if kind == "allow" else "loses"
        removed: Effect = "loses" if kind == "allow" else "gains"
        out += [Change(name, added, f"{side} {s} ({kind} added)") for s in sorted(b - a)]
        out += [Change(name, removed, f"{side} {s} ({kind} removed)") for s in sorted(a - b)]
    return out


def _lifetime(rules: Rules) -> int:
    return min(rules.expiry, rules.max_expiry) if rules.max_expiry is not None else rules.expiry


def _conditions(name: str, old: Rules, new: Rules) -> list[Change]:
    out: list[Change] = []

    def networks(rules: Rules) -> str:
        return "any" if rules.src is None else ", ".join(str(n) for n in rules.src) or "none"

    def types(rules: Rules) -> str:
        kinds = rules.connection_types
        return "any" if kinds is None else ", ".join(sorted(kinds)) or "none"

    def times(rules: Rules) -> str:
        windows = [
            f"{start}-{end} {rule.location}" for rule in rules.times for start, end in rule.text
        ]
        return ", ".join(windows) or "any time"

    for label, describe in (("src", networks), ("connection_types", types), ("times", times)):
        before, after = describe(old), describe(new)
        if before != after:
            out.append(Change(name, "changes", f"{label}: {before} → {after}"))
    return out


def _compare(name: str, old: tuple[Rules, str], new: tuple[Rules, str]) -> list[Change]:
    (a, cred_a), (b, cred_b) = old, new
    out: list[Change] = []
    if a.account != b.account:
        out.append(Change(name, "changes", f"account: {a.account} → {b.account}"))
    out += _lists(name, a, b)
    if a.response != b.response:
        before = "none" if a.response is None else f"max {a.response[0]}"
        after = "none" if b.response is None else f"max {b.response[0]}"
        effect: Effect = (
            "gains" if a.response is None else "loses" if b.response is None else "changes"
        )
        out.append(Change(name, effect, f"response permission: {before} → {after}"))
    life_a, life_b = _lifetime(a), _lifetime(b)
    if life_a != life_b:
        effect = "gains" if life_b > life_a else "loses"
        out.append(
            Change(name, effect, f"JWT lifetime: {duration_text(life_a)} → {duration_text(life_b)}")
        )
    out += _conditions(name, a, b)
    if a.tags != b.tags:
        out.append(Change(name, "changes", f"tags: {list(a.tags)} → {list(b.tags)}"))
    if a.allow_system_account != b.allow_system_account:
        effect = "gains" if b.allow_system_account else "loses"
        out.append(Change(name, effect, "may be placed in the system account"))
    if cred_a != cred_b:
        out.append(Change(name, "changes", f"credential: {cred_a} → {cred_b}"))
    return out


def diff(old: PolicySnapshot, new: PolicySnapshot) -> list[Change]:
    """Every change of every identity from ``old`` to ``new``, identities sorted by name."""
    before, after = _identities(old), _identities(new)
    out: list[Change] = []
    for name in sorted(before.keys() | after.keys()):
        if name not in after:
            out.append(Change(name, "removed", "can no longer log in"))
        elif name not in before:
            out.append(Change(name, "added", _summary(after[name][0])))
        else:
            out += _compare(name, before[name], after[name])
    return out
