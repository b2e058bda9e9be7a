"""The immutable, compiled policy a login is decided against.

`PolicySnapshot.authorize` is pure: plain values in (identity, request, ``now``), a
`Decision` out; no I/O, no validation models. Order: find the rules (static user or mapped
groups), check the credential's own expiry, the login conditions (protocol-aware ones too:
a leafnode only where a rule names LEAFNODE, an MQTT client id that fits ``mqtt_client_id``),
fill the templates, then build the grant. A side without any allow gets ``deny: [">"]``:
with no permissions at all nats-server would give the account's defaults, which in config
mode is everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from callout.decision import (
    BackendName,
    Decision,
    Identity,
    Permissions,
    Reason,
    TimeRange,
    UserGrant,
)
from callout.policy.compiler import CompiledToken, StaticUser
from callout.policy.conditions import (
    leafnode_allowed,
    mqtt_client_id_allowed,
    source_allowed,
    within,
)
from callout.policy.intents import has_private_inbox, inbox_exposures, inbox_prefix
from callout.policy.rules import Rules, Subject, combine
from callout.policy.templates import Template, Variable, is_safe
from callout.protocol.claims import AuthRequest
from callout.protocol.connections import connection_types

_DENY_ALL = (">",)
_INBOX: Variable = ("user", "inbox")


class _UnsafeValueError(Exception):
    def __init__(self, variable: Variable) -> None:
        super().__init__("{{" + ".".join(variable) + "}}")


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """One loaded policy tree. ``digest`` identifies its content, ``source`` its directory."""

    digest: str
    source: str
    users: Mapping[str, StaticUser]
    nkeys: Mapping[str, str]
    groups: Mapping[str, Rules]
    tokens: Mapping[str, CompiledToken] = field(default_factory=lambda: MappingProxyType({}))
    deny_groups: frozenset[str] = frozenset()
    legacy_tokens: tuple[str, ...] = ()  # ids of bcrypt-hashed tokens, found by trying each

    def password_user(self, name: str) -> StaticUser | None:
        """The user that logs in with ``name`` and a password, if there is one."""
        user = self.users.get(name)
        return user if user is not None and user.password_hash is not None else None

    def nkey_user(self, public_key: str) -> StaticUser | None:
        """The user that logs in with the nkey ``public_key``, if there is one."""
        name = self.nkeys.get(public_key)
        return None if name is None else self.users.get(name)

    def token(self, token_id: str) -> CompiledToken | None:
        """The API token with this id, if there is one."""
        return self.tokens.get(token_id)

    def rules_for(self, identity: Identity) -> Rules | Decision:
        """The combined rules for ``identity``, or the deny explaining why there are none.

        Static users and tokens have their own entries; everyone else is mapped through
        groups, where a ``deny`` group refuses its members whatever else they belong to."""
        deny = {"backend": identity.backend, "principal": identity.principal}
        if identity.backend == BackendName.STATIC:
            user = self.users.get(identity.principal)
            return user.rules if user is not None else Decision.deny(Reason.UNKNOWN_USER, **deny)
        if identity.backend == BackendName.TOKEN:
            token = self.tokens.get(identity.principal)
            return token.rules if token is not None else Decision.deny(Reason.UNKNOWN_TOKEN, **deny)
        refused = next((g for g in identity.groups if g in self.deny_groups), None)
        if refused is not None:
            return Decision.deny(Reason.EXPLICIT_DENY, detail=f"deny group {refused!r}", **deny)
        # Sorted: the grant must not depend on the order a directory happens to return groups.
        mapped = {g: self.groups[g] for g in sorted(set(identity.groups)) if g in self.groups}
        matched = list(mapped.values())
        if not matched:
            return Decision.deny(Reason.NO_MATCHING_RULE, detail="no mapped group", **deny)
        if len(matched) == 1:
            return matched[0]
        if len({rules.account for rules in matched}) > 1:
            detail = "groups map to different accounts"
            return Decision.deny(Reason.ACCOUNT_NOT_ALLOWED, detail=detail, **deny)
        exposed = _exposed_inbox(mapped)
        if exposed is not None:
            return Decision.deny(Reason.CONFLICTING_GRANTS, detail=exposed, **deny)
        expiry = min(rules.expiry for rules in matched)
        return combine(matched, account=matched[0].account, expiry=expiry)

    def allows_system_account(self, identity: Identity) -> bool:
        """Whether a role of ``identity`` says it may be placed in the system account."""
        rules = self.rules_for(identity)
        return isinstance(rules, Rules) and rules.allow_system_account

    def authorize(self, identity: Identity, request: AuthRequest, now: float) -> Decision:
        """Allow with a grant, or deny with the first failing reason."""
        rules = self.rules_for(identity)
        if isinstance(rules, Decision):
            return rules
        deny = {"backend": identity.backend, "principal": identity.principal}
        if identity.expires_at is not None and identity.expires_at <= now:
            return Decision.deny(Reason.CREDENTIAL_EXPIRED, **deny)
        if rules.src is not None and not source_allowed(rules.src, request.client.host):
            return Decision.deny(Reason.SOURCE_NOT_ALLOWED, **deny)
        if (
            rules.connection_types is not None
            and not (rules.connection_types & connection_types(request.client))
        ) or not leafnode_allowed(rules, request.client):
            return Decision.deny(Reason.CONNECTION_TYPE_NOT_ALLOWED, **deny)
        if not mqtt_client_id_allowed(
            rules, request.client, lambda v: _variable(v, rules, identity, request)
        ):
            return Decision.deny(Reason.MQTT_CLIENT_ID_NOT_ALLOWED, **deny)
        if not all(within(rule, now) for rule in rules.times):
            return Decision.deny(Reason.OUTSIDE_TIME_WINDOW, **deny)
        try:
            permissions = _permissions(rules, identity, request)
        except _UnsafeValueError as exc:
            return Decision.deny(Reason.UNSAFE_TEMPLATE_VALUE, detail=str(exc), **deny)
        return Decision.allow(
            _grant(rules, identity, permissions, int(now)),
            backend=identity.backend,
            principal=identity.principal,
        )


def _exposed_inbox(matched: Mapping[str, Rules]) -> str | None:
    """Why the mapped groups (name: rules) may not be combined, or None if they may.

    One group's ``private_inbox`` next to another group's subscribe grant reaching other
    inboxes (``>``, ``_INBOX.>``, ``*.>``...) would let the holder read every identity's
    replies. No grant can say "every inbox but mine" (a deny on ``_INBOX_*.>`` would win over
    the own prefix too), and dropping the other group's entry would silently change what that
    group grants: the login is refused, naming both groups. Each group alone is checked when
    the policy loads."""
    private = next(
        (name for name, rules in matched.items() if has_private_inbox(rules.sub_allow)), None
    )
    if private is None:
        return None
    for name, rules in matched.items():
        exposures = inbox_exposures(rules.sub_allow)
        if exposures:
            return (
                f"private_inbox of group {private!r} and subscribe allow {exposures[0]!r} of"
                f" group {name!r}: together they reach other identities' inboxes"
            )
    return None


def _grant(rules: Rules, identity: Identity, permissions: Permissions, now: int) -> UserGrant:
    expires = now + rules.expiry
    if rules.max_expiry is not None:
        expires = min(expires, now + rules.max_expiry)
    if identity.expires_at is not None:
        expires = min(expires, identity.expires_at)
    first_times = rules.times[0] if rules.times else None
    return UserGrant(
        name=identity.principal,
        account=rules.account,
        expires=expires,
        permissions=permissions,
        src=tuple(str(network) for network in rules.src) if rules.src else (),
        times=tuple(TimeRange(s, e) for s, e in first_times.text) if first_times else (),
        times_location=first_times.location if first_times else "",
        connection_types=tuple(sorted(rules.connection_types or ())),
        tags=rules.tags,
        proxy_required=rules.proxy_required,
    )


def _permissions(rules: Rules, identity: Identity, request: AuthRequest) -> Permissions:
    def value(variable: Variable) -> str:
        found = _variable(variable, rules, identity, request)
        if variable != _INBOX and not is_safe(found):  # the inbox prefix is derived, not given
            raise _UnsafeValueError(variable)
        return found

    def render(subjects: tuple[Subject, ...]) -> tuple[str, ...]:
        return tuple(s.render(value) if isinstance(s, Template) else s for s in subjects)

    pub_allow, sub_allow = render(rules.pub_allow), render(rules.sub_allow)
    response = rules.response
    return Permissions(
        pub_allow=pub_allow,
        pub_deny=render(rules.pub_deny) if pub_allow else _DENY_ALL,
        sub_allow=sub_allow,
        sub_deny=render(rules.sub_deny) if sub_allow else _DENY_ALL,
        resp_max=response[0] if response else 0,
        resp_ttl_ns=response[1] if response else 0,
        has_resp=response is not None,
    )


def _variable(variable: Variable, rules: Rules, identity: Identity, request: AuthRequest) -> str:
    match variable:
        case ("user", "name"):
            return identity.principal
        case ("user", "account"):
            return rules.account
        case ("user", "inbox"):
            return inbox_prefix(identity.backend, identity.principal)
        case ("user", "attr", name):
            return identity.attributes.get(name, "")
        case ("client", "name"):
            return request.client.name
        case ("server", "name"):
            return request.server.name
        case ("server", "cluster"):
            return request.server.cluster
        case ("server", "tag", name):
            prefix = name + ":"
            tags = (tag[len(prefix) :] for tag in request.server.tags if tag.startswith(prefix))
            return next(tags, "")
    return ""  # unreachable: the loader only admits known variables
