"""Warnings about a policy that loads but deserves a second look (`policy check`).

Nothing here stops a load; ``policy check --strict`` makes these fail in CI.
"""

from __future__ import annotations

from callout.backends.passwords import hash_weakness
from callout.backends.tokenformat import token_hash_scheme
from callout.errors import PolicyIssue
from callout.policy.compiler import Compiled, Entry, Merged
from callout.policy.models import ApiToken, Grants
from callout.policy.templates import Template, is_safe, parse_template

_CLIENT_NAME = ("client", "name")


def lint(merged: Merged, compiled: Compiled) -> list[PolicyIssue]:
    """Every warning for a policy that compiled without errors."""
    warnings: list[PolicyIssue] = []
    used = {role for e in merged.users.values() for role in e.value.roles}
    used |= {role for e in merged.groups.values() for role in e.value.roles}
    used |= {role for e in merged.tokens.values() for role in e.value.roles}
    for name, role in merged.roles.items():
        if name not in used:
            warnings.append(role.issue(f"role {name!r} is not used by any user or group"))
        warnings.extend(_grants(role))
        if role.value.allow_system_account:
            warnings.append(
                role.issue(
                    "holders of this role may be placed in the system account",
                    "allow_system_account",
                )
            )
    for name, user in merged.users.items():
        warnings.extend(_grants(user))
        if user.value.password is not None:
            weakness = hash_weakness(user.value.password)
            if weakness:
                warnings.append(user.issue(weakness, "password"))
        rules = compiled.users[name].rules
        if rules.templated and not is_safe(name):
            warnings.append(
                user.issue(
                    "this name cannot fill {{user.name}} (it holds '.', '*', '>' or whitespace);"
                    " every login of this user will be denied"
                )
            )
        capped = rules.max_expiry is not None and rules.expiry > rules.max_expiry
        if capped and user.value.expiry is not None:
            warnings.append(user.issue("expiry is longer than max_expiry; it is capped", "expiry"))
    for token in merged.tokens.values():
        warnings.extend(_grants(token))
        warnings.extend(_token(token))
    return warnings


def _token(entry: Entry[ApiToken]) -> list[PolicyIssue]:
    out: list[PolicyIssue] = []
    if token_hash_scheme(entry.value.hash) == "bcrypt":
        out.append(
            entry.issue(
                "legacy bcrypt token: every token without our prefix costs one bcrypt check per"
                " legacy entry; re-issue it with `callout token new`",
                "hash",
            )
        )
    if entry.value.expires is None:
        out.append(entry.issue("this token never expires; set expires"))
    return out


def _grants(entry: Entry[Grants]) -> list[PolicyIssue]:
    grants = entry.value
    out: list[PolicyIssue] = []
    if grants.publish is not None:
        for index, subject in enumerate(grants.publish.allow):
            if subject == ">":
                out.append(
                    entry.issue("'>' allows publishing to every subject", "publish", "allow", index)
                )
    for side, rules in (("publish", grants.publish), ("subscribe", grants.subscribe)):
        for index, subject in enumerate(rules.allow if rules else ()):
            if _uses_client_name(subject):
                out.append(
                    entry.issue(
                        "{{client.name}} is chosen by the client; do not rely on it to separate"
                        " users",
                        side,
                        "allow",
                        index,
                    )
                )
    if grants.times is not None and grants.times_location is None:
        out.append(entry.issue("times_location is not set; the windows are in UTC", "times"))
    types = set(grants.connection_types or ())
    if "IN_PROCESS" in types and "STANDARD" not in types:
        out.append(
            entry.issue(
                "IN_PROCESS cannot be told from STANDARD in a request; without STANDARD every"
                " login is denied",
                "connection_types",
            )
        )
    return out


def _uses_client_name(subject: str) -> bool:
    parsed = parse_template(subject)
    return isinstance(parsed, Template) and _CLIENT_NAME in parsed.variables
