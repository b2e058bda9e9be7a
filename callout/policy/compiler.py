"""From validated, merged files to compiled `Rules`: role references, accounts, conditions.

Everything a login needs is resolved here, once per load: role references, the target
account (user > role > defaults), templates parsed, CIDRs and zones built, expiry limits.
Problems that only show across entries (an unknown role, two roles naming different
accounts, conditions that no login could meet) become issues with the entry's file and line.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from callout.errors import PolicyIssue
from callout.policy.clientids import parse_client_id
from callout.policy.intents import Intents, compile_intents, has_private_inbox, inbox_exposures
from callout.policy.models import ApiToken, Defaults, Grants, Group, Role, User
from callout.policy.rules import Rules, TimeRule, combine
from callout.policy.templates import parse_template
from callout.policy.yamldoc import Document, Path

DEFAULT_EXPIRY = 3600
DEFAULT_RESPONSE = (1, 120 * 1_000_000_000)  # a service server's replies: 1 within 2 minutes


T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Entry(Generic[T_co]):
    """A validated entry and where it was written."""

    value: T_co
    doc: Document
    path: Path

    def issue(self, message: str, *more: str | int) -> PolicyIssue:
        return self.doc.issue((*self.path, *more), message)


_Holder = Entry[User] | Entry[Group] | Entry[ApiToken]


@dataclass(slots=True)
class Merged:
    """All files' sections after merging (duplicates already reported by the loader)."""

    defaults: Entry[Defaults] | None = None
    roles: dict[str, Entry[Role]] = field(default_factory=dict)
    users: dict[str, Entry[User]] = field(default_factory=dict)
    groups: dict[str, Entry[Group]] = field(default_factory=dict)
    tokens: dict[str, Entry[ApiToken]] = field(default_factory=dict)
    broken_roles: set[str] = field(default_factory=set)  # defined in files that failed
    broken_defaults: bool = False
    unparsed: bool = False  # a file could not be read at all: any name may be defined there


@dataclass(frozen=True, slots=True)
class StaticUser:
    """A user the static backend can verify, with its compiled rules."""

    name: str
    password_hash: str | None
    nkey: str | None
    rules: Rules


@dataclass(frozen=True, slots=True)
class CompiledToken:
    """An API token the token backend can verify, with its compiled rules."""

    id: str
    hash: str = field(repr=False)
    owner: str
    expires_at: int | None  # epoch seconds
    rules: Rules


@dataclass(frozen=True, slots=True)
class Compiled:
    users: dict[str, StaticUser]
    nkeys: dict[str, str]
    groups: dict[str, Rules]
    tokens: dict[str, CompiledToken] = field(default_factory=dict)
    deny_groups: frozenset[str] = frozenset()


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else max(1, int(value.total_seconds()))


def _part(
    grants: Grants, *, allow_system_account: bool = False, proxy_required: bool = False
) -> Rules:
    """The rules one role or user writes for itself (account resolved elsewhere)."""
    pub, sub, resp = grants.publish, grants.subscribe, grants.response
    zone = grants.times_location or "UTC"
    times: tuple[TimeRule, ...] = ()
    if grants.times:
        times = (
            TimeRule(
                windows=tuple((_clock(w.start), _clock(w.end)) for w in grants.times),
                zone=ZoneInfo(zone),
                location=zone,
                text=tuple((w.start, w.end) for w in grants.times),
            ),
        )
    # Grants by intent add their subjects after the raw ones, and a server's replies.
    intents = compile_intents(Intents.of(grants))
    response = (resp.max, resp.ttl // timedelta(microseconds=1) * 1000) if resp else None
    return Rules(
        pub_allow=(*(parse_template(s) for s in (pub.allow if pub else ())), *intents.publish),
        pub_deny=tuple(parse_template(s) for s in pub.deny) if pub else (),
        sub_allow=(*(parse_template(s) for s in (sub.allow if sub else ())), *intents.subscribe),
        sub_deny=tuple(parse_template(s) for s in sub.deny) if sub else (),
        response=response or (DEFAULT_RESPONSE if intents.responds else None),
        max_expiry=_seconds(grants.max_expiry),
        src=tuple(ipaddress.ip_network(c) for c in grants.src) if grants.src else None,
        connection_types=frozenset(grants.connection_types) if grants.connection_types else None,
        times=times,
        allow_system_account=allow_system_account,
        mqtt_client_ids=(
            (tuple(parse_client_id(text) for text in grants.mqtt_client_id),)
            if grants.mqtt_client_id
            else ()
        ),
        proxy_required=proxy_required,
    )


def _clock(text: str) -> int:
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return hours * 3600 + minutes * 60 + seconds


class _Compiler:
    def __init__(self, merged: Merged) -> None:
        self.merged = merged
        self.issues: list[PolicyIssue] = []
        defaults = merged.defaults.value if merged.defaults else Defaults()
        self.default_account = defaults.account or ""
        self.default_expiry = _seconds(defaults.expiry) or DEFAULT_EXPIRY
        self.default_max = _seconds(defaults.max_expiry)
        self.roles = {
            name: _part(
                e.value,
                allow_system_account=e.value.allow_system_account,
                proxy_required=e.value.proxy_required,
            )
            for name, e in merged.roles.items()
        }

    def _roles(self, entry: _Holder, names: Sequence[str]) -> list[str] | None:
        found, ok = [], True
        for index, name in enumerate(names):
            if name in self.roles:
                found.append(name)
            elif name not in self.merged.broken_roles and not self.merged.unparsed:
                self.issues.append(entry.issue(f"unknown role {name!r}", "roles", index))
                ok = False
        return found if ok else None

    def _account(self, entry: _Holder, own: str | None, roles: list[str]) -> str:
        named = {name: self.merged.roles[name].value.account for name in roles}
        accounts = sorted({a for a in named.values() if a})
        if len(accounts) > 1:
            which = ", ".join(f"{r} ({a})" for r, a in named.items() if a)
            self.issues.append(entry.issue(f"roles name different accounts: {which}", "roles"))
            return ""
        account = own or (accounts[0] if accounts else self.default_account)
        if not account and not (self.merged.broken_defaults or self.merged.unparsed):
            self.issues.append(
                entry.issue("no account: set account here, on a role, or in defaults.account")
            )
        return account

    def _finish(self, entry: _Holder, parts: list[Rules], account: str, expiry: int) -> Rules:
        parts.append(Rules(max_expiry=self.default_max))
        rules = combine(parts, account=account, expiry=expiry)
        if rules.src == ():
            self.issues.append(entry.issue("src lists of the user and its roles do not overlap"))
        if rules.connection_types == frozenset():
            self.issues.append(
                entry.issue("connection_types of the user and its roles have nothing in common")
            )
        if has_private_inbox(rules.sub_allow):
            for subject in inbox_exposures(rules.sub_allow):
                self.issues.append(
                    entry.issue(
                        f"private_inbox is set, but subscribe allow {subject!r} reaches other"
                        " identities' inboxes: remove it (replies arrive on the private inbox)"
                    )
                )
        return rules

    def _own(self, entry: Entry[User] | Entry[ApiToken]) -> Rules | None:
        """The rules of a user or token: its own grants, its roles, account and expiry."""
        holder = entry.value
        roles = self._roles(entry, holder.roles)
        if roles is None:
            return None
        account = self._account(entry, holder.account, roles)
        parts = [replace(_part(holder), tags=tuple(holder.tags)), *(self.roles[r] for r in roles)]
        expiry = _seconds(holder.expiry) or self.default_expiry
        return self._finish(entry, parts, account, expiry)

    def user(self, name: str, entry: Entry[User]) -> StaticUser | None:
        rules = self._own(entry)
        if rules is None:
            return None
        return StaticUser(name, entry.value.password, entry.value.nkey, rules)

    def token(self, token_id: str, entry: Entry[ApiToken]) -> CompiledToken | None:
        rules = self._own(entry)
        if rules is None:
            return None
        token = entry.value
        expires = int(token.expires.timestamp()) if token.expires is not None else None
        return CompiledToken(token_id, token.hash, token.owner, expires, rules)

    def group(self, entry: Entry[Group]) -> Rules | None:
        roles = self._roles(entry, entry.value.roles)
        if roles is None:
            return None
        account = self._account(entry, entry.value.account, roles)
        parts = [self.roles[r] for r in roles]
        return self._finish(entry, parts, account, self.default_expiry)


def compile_policy(merged: Merged) -> tuple[Compiled, list[PolicyIssue]]:
    """Compiled users and groups, and every cross-entry problem found."""
    compiler = _Compiler(merged)
    users: dict[str, StaticUser] = {}
    nkeys: dict[str, str] = {}
    for name, entry in merged.users.items():
        compiled = compiler.user(name, entry)
        if compiled is None:
            continue
        users[name] = compiled
        if compiled.nkey is not None:
            other = nkeys.setdefault(compiled.nkey, name)
            if other != name:
                compiler.issues.append(entry.issue(f"same nkey as user {other!r}", "nkey"))
    groups = {}
    for name, group_entry in merged.groups.items():
        if group_entry.value.deny:
            continue
        rules = compiler.group(group_entry)
        if rules is not None:
            groups[name] = rules
    deny_groups = frozenset(name for name, entry in merged.groups.items() if entry.value.deny)
    tokens = {}
    for token_id, token_entry in merged.tokens.items():
        token = compiler.token(token_id, token_entry)
        if token is not None:
            tokens[token_id] = token
    return Compiled(users, nkeys, groups, tokens, deny_groups), compiler.issues
