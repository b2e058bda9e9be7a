"""Compiled grants: what the loader turns roles, users and groups into, ready per login.

`Rules` is plain frozen data. Combining follows one principle: **permissions add up,
conditions narrow.** Allow and deny lists are unions (and NATS lets deny win); ``src``,
connection types and time windows from every role and the user must all hold; the shortest
``max_expiry`` wins.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from callout.policy.clientids import ClientIdPattern
from callout.policy.templates import Template

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Subject = str | Template


@dataclass(frozen=True, slots=True)
class TimeRule:
    """Daily windows in one zone: a login must fall in one of them. Seconds of the day."""

    windows: tuple[tuple[int, int], ...]
    zone: ZoneInfo
    location: str
    text: tuple[tuple[str, str], ...]  # the windows as written, for the user JWT


@dataclass(frozen=True, slots=True)
class Rules:
    """The grants and conditions of one role, user or group, or of several combined."""

    account: str = ""
    pub_allow: tuple[Subject, ...] = ()
    pub_deny: tuple[Subject, ...] = ()
    sub_allow: tuple[Subject, ...] = ()
    sub_deny: tuple[Subject, ...] = ()
    response: tuple[int, int] | None = None  # (max replies, ttl in nanoseconds)
    expiry: int = 0  # seconds; 0 = not set here
    max_expiry: int | None = None
    src: tuple[Network, ...] | None = None  # None = any address
    connection_types: frozenset[str] | None = None  # None = any type
    times: tuple[TimeRule, ...] = ()
    tags: tuple[str, ...] = ()
    allow_system_account: bool = False
    # Each inner tuple is one role's or user's list: an MQTT client id must fit one pattern of
    # every list (conditions narrow).
    mqtt_client_ids: tuple[tuple[ClientIdPattern, ...], ...] = ()
    proxy_required: bool = False

    @property
    def templated(self) -> bool:
        return any(
            isinstance(subject, Template)
            for subject in (*self.pub_allow, *self.pub_deny, *self.sub_allow, *self.sub_deny)
        )


def _union(lists: Iterable[tuple[Subject, ...]]) -> tuple[Subject, ...]:
    seen: dict[str, Subject] = {}
    for subjects in lists:
        for subject in subjects:
            seen.setdefault(subject.text if isinstance(subject, Template) else subject, subject)
    return tuple(seen.values())


def intersect_networks(
    left: tuple[Network, ...] | None, right: tuple[Network, ...] | None
) -> tuple[Network, ...] | None:
    """Addresses in both lists. Two CIDRs either nest or are disjoint: keep the inner one."""
    if left is None or right is None:
        return right if left is None else left
    out: list[Network] = []
    for a in left:
        for b in right:
            if a.version == b.version and a.overlaps(b):
                inner = a if a.prefixlen >= b.prefixlen else b
                if inner not in out:
                    out.append(inner)
    return tuple(out)


def _narrow_types(values: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    out: frozenset[str] | None = None
    for value in values:
        if value is not None:
            out = value if out is None else out & value
    return out


def combine(parts: Sequence[Rules], *, account: str, expiry: int) -> Rules:
    """One `Rules` holding every part's grants and every part's conditions."""
    responses = [part.response for part in parts if part.response is not None]
    max_expiries = [part.max_expiry for part in parts if part.max_expiry is not None]
    src: tuple[Network, ...] | None = None
    for part in parts:
        src = intersect_networks(src, part.src)
    return Rules(
        account=account,
        pub_allow=_union(part.pub_allow for part in parts),
        pub_deny=_union(part.pub_deny for part in parts),
        sub_allow=_union(part.sub_allow for part in parts),
        sub_deny=_union(part.sub_deny for part in parts),
        response=(
            (max(r[0] for r in responses), max(r[1] for r in responses)) if responses else None
        ),
        expiry=expiry,
        max_expiry=min(max_expiries) if max_expiries else None,
        src=src,
        connection_types=_narrow_types(part.connection_types for part in parts),
        times=tuple(rule for part in parts for rule in part.times),
        tags=tuple(dict.fromkeys(tag for part in parts for tag in part.tags)),
        allow_system_account=any(part.allow_system_account for part in parts),
        mqtt_client_ids=tuple(
            dict.fromkeys(patterns for part in parts for patterns in part.mqtt_client_ids)
        ),
        proxy_required=any(part.proxy_required for part in parts),
    )
