"""Deciding a simulated login without NATS: the decision, the rules behind it, the claims.

`Login` describes a client as nats-server would report it (credentials, address, connection
type, server name and tags); `build_request` makes the `AuthRequest` the server would send.
`simulate_login` runs the service's decision on it (backends, policy, account placement; no
keys, nothing signed) at the simulated time, certificate validity included (`as_of`);
`explain` adds which entries matched (with file:line), how each login condition came out,
and the user claims the service would sign. Shared by ``policy explain`` and ``policy test``."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from callout.backends.base import Backend
from callout.backends.chain import innermost
from callout.decision import BackendName, Decision, Identity
from callout.policy.compiler import Entry, Merged
from callout.policy.conditions import source_allowed, within
from callout.policy.intents import Intents, describe, has_private_inbox, inbox_prefix
from callout.policy.models import Grants
from callout.policy.rules import Rules
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest, user_claims
from callout.protocol.connections import connection_types
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.protocol.requests import client_kind, request_claims
from callout.service.pipeline import authorize_request
from callout.service.placement import ANY_ACCOUNT, Placement

_SERVER_KEY = KeyPair.generate(KeyRole.SERVER)


@dataclass(frozen=True, slots=True)
class Login:
    """A simulated client. Secrets are fields with ``repr=False``; they never reach output."""

    user: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    nkey_seed: str = field(default="", repr=False)
    host: str = "127.0.0.1"
    connection_type: str = "STANDARD"
    client_name: str = ""
    mqtt_client_id: str = ""  # sent as client_info.mqtt_id for MQTT connection types
    server_name: str = "explain"
    server_cluster: str = ""
    server_tags: tuple[str, ...] = ()


def build_request(login: Login, now: int) -> AuthRequest:
    """The authorization request nats-server would send for ``login`` at ``now``."""
    client: dict[str, Any] = {"host": login.host, **client_kind(login.connection_type)}
    connect: dict[str, Any] = {"lang": "explain", "version": "0"}
    if login.client_name:
        client["name"] = connect["name"] = login.client_name
    if login.mqtt_client_id and client["type"] == "mqtt":
        client["mqtt_id"] = login.mqtt_client_id
    if login.user:
        connect["user"] = login.user
        client["user"] = login.user
        connect["pass"] = login.password
    if login.token:
        connect["auth_token"] = login.token
    if login.nkey_seed:
        key = KeyPair.from_seed(login.nkey_seed, KeyRole.USER)
        nonce = secrets.token_urlsafe(11)
        client["nonce"] = nonce
        connect["nkey"] = key.public_key
        connect["sig"] = base64.urlsafe_b64encode(key.sign(nonce.encode())).decode().rstrip("=")
    server: dict[str, Any] = {"id": _SERVER_KEY.public_key, "name": login.server_name}
    if login.server_cluster:
        server["cluster"] = login.server_cluster
    if login.server_tags:
        server["tags"] = [tag.lower() for tag in login.server_tags]
    claims = request_claims(
        server=server,
        client=client,
        connect=connect,
        user_nkey=KeyPair.generate(KeyRole.USER).public_key,
        account="AEXPLAIN",
        now=now,
        jti="explain",
    )
    return AuthRequest.from_claims(claims)


class GivenIdentity:
    """A backend that vouches for one identity: policy tests skip authentication with it."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.name = identity.backend

    async def authenticate(self, request: AuthRequest, policy: PolicySnapshot) -> Identity:
        return self.identity


class _Recording:
    """Passes a backend's answer on and remembers the identity (for the explanation)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.identity: Identity | None = None

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        result = await self.inner.authenticate(request, policy)
        if isinstance(result, Identity):
            self.identity = result
        return result


def as_of(backends: Sequence[Backend], now: float) -> list[Backend]:
    """The chain as a login simulated at ``now`` runs it: without the service's wrappers (their
    deadlines follow the wall clock, not ``now``; a simulation caches and reports nothing),
    each backend with an ``as_of(now)`` method (one that checks validity times: certificates)
    moved to ``now``. Token backends whose library reads the clock (OIDC) stay at the real
    time."""
    out: list[Backend] = []
    for backend in backends:
        inner = innermost(backend)
        moved = getattr(inner, "as_of", None)
        out.append(moved(now) if callable(moved) else inner)
    return out


async def simulate_login(
    snapshot: PolicySnapshot,
    request: AuthRequest,
    backends: Sequence[Backend],
    *,
    now: float,
    accounts: frozenset[str] | None = None,
    system_account: str | None = None,
) -> tuple[Decision, Identity | None]:
    """The service's decision for ``request``, and the identity a backend verified.
    ``accounts`` are those users may be placed into (None: any); nothing is signed."""
    recording = [_Recording(backend) for backend in as_of(backends, now)]
    placement = ANY_ACCOUNT if accounts is None else Placement(accounts)
    decision = await authorize_request(
        request,
        snapshot,
        recording,
        placement,
        system_accounts=(system_account,),
        now=now,
    )
    identity = next((r.identity for r in recording if r.identity is not None), None)
    return decision, identity


@dataclass(frozen=True, slots=True)
class Origin:
    """A policy entry that contributed to the decision, and why it applies."""

    label: str  # "user alice", "role app-rw", "group devs"
    where: str  # file:line
    why: str
    grants: tuple[str, ...]  # its permissions, as written


@dataclass(frozen=True, slots=True)
class Check:
    """One login condition and how it came out."""

    name: str
    held: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    identity: Identity | None
    origins: tuple[Origin, ...]
    checks: tuple[Check, ...]
    claims: dict[str, Any] | None
    inbox_prefix: str | None = None  # the private inbox prefix the client must use


def _where(entry: Entry[Any]) -> str:
    line = entry.doc.line(entry.path)
    return entry.doc.file if line is None else f"{entry.doc.file}:{line}"


def _written(grants: Grants) -> tuple[str, ...]:
    out: list[str] = []
    for side in ("publish", "subscribe"):
        rules = getattr(grants, side)
        for verb in ("allow", "deny"):
            out.extend(f"{side} {verb} {subject}" for subject in getattr(rules, verb, ()) or ())
    if grants.response is not None:
        out.append(f"response max {grants.response.max} ttl {grants.response.ttl}")
    # grants by intent: each intent's compiled entries (callout.policy.intents)
    out += describe(Intents.of(grants))
    if grants.account:
        out.append(f"account {grants.account}")
    return tuple(out)


def origins(merged: Merged, identity: Identity) -> list[Origin]:
    """The entries that give ``identity`` its rules, in the order they combine."""
    found: list[Origin] = []
    roles: list[tuple[str, str]] = []
    if identity.backend == BackendName.STATIC:
        user = merged.users.get(identity.principal)
        if user is None:
            return found
        why = f"static user verified by the {identity.backend} backend"
        found.append(Origin(f"user {identity.principal}", _where(user), why, _written(user.value)))
        roles = [(name, f"listed in users.{identity.principal}.roles") for name in user.value.roles]
    else:
        for name in dict.fromkeys(identity.groups):
            group = merged.groups.get(name)
            if group is not None:
                why = f"{identity.principal} is a member (from the {identity.backend} backend)"
                found.append(Origin(f"group {name}", _where(group), why, ()))
                roles += [(role, f"mapped from group {name}") for role in group.value.roles]
    for name, why in dict.fromkeys(roles):
        role = merged.roles.get(name)
        if role is not None:
            found.append(Origin(f"role {name}", _where(role), why, _written(role.value)))
    return found


def conditions(rules: Rules, request: AuthRequest, now: float) -> list[Check]:
    """How each login condition of ``rules`` came out for ``request`` at ``now``."""
    out: list[Check] = []
    if rules.src is not None:
        networks = ", ".join(str(network) for network in rules.src) or "(none left)"
        held = source_allowed(rules.src, request.client.host)
        verdict = "inside" if held else "outside"
        out.append(Check("src", held, f"client {request.client.host} is {verdict} {networks}"))
    if rules.connection_types is not None:
        kinds = connection_types(request.client)
        held = bool(rules.connection_types & kinds)
        allowed = ", ".join(sorted(rules.connection_types))
        seen = "/".join(sorted(kinds)) or "unknown"
        out.append(Check("connection_types", held, f"client is {seen}; allowed {allowed}"))
    for rule in rules.times:
        held = within(rule, now)
        local = datetime.fromtimestamp(now, rule.zone).strftime("%Y-%m-%d %H:%M:%S")
        windows = ", ".join(f"{start}-{end}" for start, end in rule.text)
        out.append(Check("times", held, f"{local} {rule.location}; windows {windows}"))
    return out


async def explain(
    snapshot: PolicySnapshot,
    merged: Merged,
    request: AuthRequest,
    backends: Sequence[Backend],
    *,
    now: float,
    accounts: frozenset[str] | None = None,
    system_account: str | None = None,
) -> Explanation:
    """`simulate_login`, plus the matched entries, the conditions and the claims to be signed."""
    decision, identity = await simulate_login(
        snapshot, request, backends, now=now, accounts=accounts, system_account=system_account
    )
    found: list[Origin] = []
    checks: list[Check] = []
    private = False
    if identity is not None:
        found = origins(merged, identity)
        rules = snapshot.rules_for(identity)
        if isinstance(rules, Rules):
            checks = conditions(rules, request, now)
            private = has_private_inbox(rules.sub_allow)
    claims = None
    prefix = None
    if decision.grant is not None:
        claims = user_claims(decision.grant, request.user_nkey, audience=decision.grant.account)
        if private and identity is not None:
            prefix = inbox_prefix(identity.backend, identity.principal)
    return Explanation(decision, identity, tuple(found), tuple(checks), claims, prefix)


def parse_time(text: str) -> float:
    """Unix time from ISO 8601 (``2027-01-15T09:00:00Z``; no zone means UTC)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
