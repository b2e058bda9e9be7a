"""Warnings about a policy that loads but deserves a second look (`policy check`).

Nothing here stops a load; ``policy check --strict`` makes warnings fail in CI. Every warning
has a code; an entry (role, user, group) may accept a warning on purpose with
``acknowledge: {CODE: "why"}``, which moves it to the acknowledged list (a code acknowledged
where nothing is found is itself a warning, so stale acknowledgements do not pile up).
Notes are facts a reviewer should know (what nats-server does not enforce) and never fail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from callout.credentials.passwords import hash_weakness
from callout.credentials.tokens import token_hash_scheme
from callout.errors import PolicyIssue
from callout.policy.compiler import Compiled, CompiledToken, Entry, Merged, StaticUser
from callout.policy.models import ApiToken, Grants, Group, Role, User
from callout.policy.rules import Rules
from callout.policy.subjects import covers, split_queue
from callout.policy.templates import Template, is_safe, parse_template

_CLIENT_NAME = ("client", "name")
_SIDES = ("publish", "subscribe")
_MQTT = frozenset({"MQTT", "MQTT_WS"})


@dataclass(slots=True)
class Findings:
    warnings: list[PolicyIssue] = field(default_factory=list)
    notes: list[PolicyIssue] = field(default_factory=list)
    acknowledged: list[PolicyIssue] = field(default_factory=list)


AnyEntry = Entry[Role] | Entry[User] | Entry[Group] | Entry[ApiToken]


def lint(merged: Merged, compiled: Compiled) -> Findings:
    """Every warning and note for a policy that compiled without errors."""
    raw: list[tuple[AnyEntry, PolicyIssue]] = []
    notes: list[PolicyIssue] = []
    used = {role for e in merged.users.values() for role in e.value.roles}
    used |= {role for e in merged.groups.values() for role in e.value.roles}
    used |= {role for e in merged.tokens.values() for role in e.value.roles}
    for name, role in merged.roles.items():
        if name not in used:
            message = f"role {name!r} is not used by any user or group"
            raw.append((role, _issue(role, "unused-role", message)))
        raw.extend((role, issue) for issue in _grants(role))
        notes.extend(_not_enforced(role))
        if role.value.allow_system_account:
            message = "holders of this role may be placed in the system account"
            raw.append((role, _issue(role, "system-account", message, "allow_system_account")))
    for name, user in merged.users.items():
        raw.extend((user, issue) for issue in _user(name, user, compiled))
        raw.extend((user, issue) for issue in _mqtt(user, compiled.users.get(name)))
        raw.extend((user, issue) for issue in _unreachable(user, user.value.roles, merged))
        notes.extend(_not_enforced(user))
    for name, group in merged.groups.items():
        raw.extend((group, issue) for issue in _unreachable(group, group.value.roles, merged))
        raw.extend((group, issue) for issue in _mqtt(group, compiled.groups.get(name)))
    for token_id, token in merged.tokens.items():
        raw.extend((token, issue) for issue in _mqtt(token, compiled.tokens.get(token_id)))
        raw.extend((token, issue) for issue in _grants(token))
        raw.extend((token, issue) for issue in _token(token))
        raw.extend((token, issue) for issue in _unreachable(token, token.value.roles, merged))
        notes.extend(_not_enforced(token))
    return _acknowledge(raw, notes, merged)


def _issue(entry: AnyEntry, code: str, message: str, *path: str | int) -> PolicyIssue:
    return replace(entry.issue(message, *path), code=code)


def _acknowledge(
    raw: list[tuple[AnyEntry, PolicyIssue]], notes: list[PolicyIssue], merged: Merged
) -> Findings:
    findings = Findings(notes=notes)
    used: set[tuple[int, str]] = set()
    for entry, issue in raw:
        if issue.code in entry.value.acknowledge:
            findings.acknowledged.append(issue)
            used.add((id(entry), issue.code))
        else:
            findings.warnings.append(issue)
    entries: Iterable[AnyEntry] = [
        *merged.roles.values(),
        *merged.users.values(),
        *merged.groups.values(),
        *merged.tokens.values(),
    ]
    for entry in entries:
        for code in entry.value.acknowledge:
            if (id(entry), code) not in used:
                message = f"acknowledges {code!r} but there is no such warning here; remove it"
                findings.warnings.append(entry.issue(message, "acknowledge", code))
    return findings


def _user(name: str, user: Entry[User], compiled: Compiled) -> list[PolicyIssue]:
    out = _grants(user)
    if user.value.password is not None:
        weakness = hash_weakness(user.value.password)
        if weakness:
            code = "weak-hash" if weakness.startswith("argon2id parameters") else "legacy-hash"
            out.append(_issue(user, code, weakness, "password"))
    rules = compiled.users[name].rules
    if rules.templated and not is_safe(name):
        message = (
            "this name cannot fill {{user.name}} (it holds '.', '*', '>' or whitespace, or"
            " starts with _INBOX);"
            " every login of this user will be denied"
        )
        out.append(_issue(user, "unsafe-name", message))
    capped = rules.max_expiry is not None and rules.expiry > rules.max_expiry
    if capped and user.value.expiry is not None:
        message = "expiry is longer than max_expiry; it is capped"
        out.append(_issue(user, "expiry-capped", message, "expiry"))
    return out


def _mqtt(
    entry: AnyEntry, compiled: Rules | StaticUser | CompiledToken | None
) -> list[PolicyIssue]:
    """MQTT admitted on purpose (named in connection_types) with any client id allowed."""
    rules = compiled.rules if isinstance(compiled, StaticUser | CompiledToken) else compiled
    if rules is None or not (rules.connection_types or frozenset()) & _MQTT:
        return []
    if rules.mqtt_client_ids:
        return []
    message = (
        "MQTT clients here may use any client id, another client's too (its session is taken"
        ' over); set mqtt_client_id, e.g. ["{{user.name}}-*"]'
    )
    return [_issue(entry, "mqtt-client-id", message)]


def _token(entry: Entry[ApiToken]) -> list[PolicyIssue]:
    out: list[PolicyIssue] = []
    if token_hash_scheme(entry.value.hash) == "bcrypt":
        message = (
            "legacy bcrypt token: every token without our prefix costs one bcrypt check per"
            " legacy entry; re-issue it with `callout token new`"
        )
        out.append(_issue(entry, "legacy-hash", message, "hash"))
    if entry.value.expires is None:
        out.append(_issue(entry, "no-expiry", "this token never expires; set expires"))
    return out


def _grants(entry: Entry[Any]) -> list[PolicyIssue]:
    grants: Grants = entry.value
    out: list[PolicyIssue] = []
    for side, rules in (("publish", grants.publish), ("subscribe", grants.subscribe)):
        for index, subject in enumerate(rules.allow if rules else ()):
            broad = _over_broad(subject, side)
            if broad:
                out.append(_issue(entry, "over-broad", broad, side, "allow", index))
            if _uses_client_name(subject):
                message = (
                    "{{client.name}} is chosen by the client; do not rely on it to separate users"
                )
                out.append(_issue(entry, "client-name", message, side, "allow", index))
    if grants.times is not None and grants.times_location is None:
        message = "times_location is not set; the windows are in UTC"
        out.append(_issue(entry, "times-utc", message, "times"))
    types = set(grants.connection_types or ())
    if "IN_PROCESS" in types and "STANDARD" not in types:
        message = (
            "IN_PROCESS cannot be told from STANDARD in a request; without STANDARD every"
            " login is denied"
        )
        out.append(_issue(entry, "in-process", message, "connection_types"))
    return out


def _over_broad(entry: str, side: str) -> str | None:
    subject, _ = split_queue(entry)
    verb = "publishing" if side == "publish" else "subscribing"
    if subject == ">":
        return f"'>' allows {verb} to every subject, including other tenants' and $SYS-like ones"
    first = subject.split(".", 1)[0]
    if first in ("*", ">"):
        return f"{subject!r} starts with a wildcard: it allows {verb} across every subject tree"
    return None


def _uses_client_name(subject: str) -> bool:
    parsed = parse_template(subject)
    return isinstance(parsed, Template) and _CLIENT_NAME in parsed.variables


def _parts(entry: AnyEntry, roles: list[str], merged: Merged) -> list[tuple[str, Grants]]:
    """(where it is written, grants) for an entry and each of its roles."""
    own: list[tuple[str, Grants]] = []
    if isinstance(entry.value, Grants):
        own.append(("itself", entry.value))
    return own + [(f"role {r!r}", merged.roles[r].value) for r in roles if r in merged.roles]


def _unreachable(entry: AnyEntry, roles: list[str], merged: Merged) -> list[PolicyIssue]:
    """Allow entries that a deny of the same identity always overrides."""
    out: list[PolicyIssue] = []
    parts = _parts(entry, roles, merged)
    for side in _SIDES:
        denies = [
            (origin, deny)
            for origin, grants in parts
            for deny in (getattr(grants, side).deny if getattr(grants, side) else ())
        ]
        for origin, grants in parts:
            rules = getattr(grants, side)
            for allow in rules.allow if rules else ():
                for deny_origin, deny in denies:
                    if _denied(deny, allow):
                        message = (
                            f"{side} allow {allow!r} ({origin}) can never take effect: denied by"
                            f" {deny!r} ({deny_origin})"
                        )
                        out.append(_issue(entry, "unreachable-rule", message))
                        break
    return out


def _denied(deny: str, allow: str) -> bool:
    deny_subject, deny_queue = split_queue(deny)
    allow_subject, allow_queue = split_queue(allow)
    if deny_queue is not None and deny_queue != allow_queue:
        return False
    return covers(deny_subject, allow_subject)


def _not_enforced(entry: Entry[Any]) -> list[PolicyIssue]:
    grants: Grants = entry.value
    out: list[PolicyIssue] = []
    if grants.src is not None:
        out.append(
            _issue(
                entry,
                "not-enforced",
                "nats-server does not enforce src for callout users; this service checks it at"
                " every login (behind a proxy it sees the proxy's address)",
                "src",
            )
        )
    if grants.connection_types is not None:
        out.append(
            _issue(
                entry,
                "not-enforced",
                "nats-server does not enforce connection_types for callout users; this service"
                " checks them at every login",
                "connection_types",
            )
        )
    if isinstance(grants, User) and grants.tags:
        out.append(
            _issue(
                entry,
                "not-enforced",
                "tags are copied into the user JWT but nats-server neither enforces nor shows"
                " them for callout users",
                "tags",
            )
        )
    return out
