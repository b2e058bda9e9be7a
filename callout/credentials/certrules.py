"""Who a client certificate names: its fields, SPIFFE IDs, and the rules that map them to an
identity and to groups. Pure: plain strings in, plain values out (the certificate is read in
`callout.credentials.certificates`).

Fields are a closed set (`FIELDS`): the SAN entries (``san.dns``, ``san.uri``, ``san.email``),
the SPIFFE ID (``spiffe.id``: the single URI SAN of an X.509-SVID), attributes of the subject
and issuer names (``subject.CN``, ``subject.OU``, ...), and the leaf's ``sha256`` fingerprint.

An identity rule takes the values of one field that match its pattern (a full match); the
first rule with a match decides, and more than one distinct matching value is ambiguous (a
refusal, never a pick). The principal is the pattern's ``principal`` group, else the whole
value; other named groups become attributes (``{{user.attr.NAME}}``). Values are not trusted
to be subject-safe: the policy checks every template value when it renders
(`callout.policy.templates.is_safe`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

CertificateField = Literal[
    "san.dns",
    "san.uri",
    "san.email",
    "spiffe.id",
    "subject.CN",
    "subject.O",
    "subject.OU",
    "subject.serialNumber",
    "subject.emailAddress",
    "subject.UID",
    "subject.DC",
    "subject.C",
    "subject.L",
    "subject.ST",
    "issuer.CN",
    "issuer.O",
    "issuer.OU",
    "sha256",
]
FIELDS: tuple[str, ...] = get_args(CertificateField)
SPIFFE_FIELD = "spiffe.id"
PRINCIPAL_GROUP = "principal"
MAX_SPIFFE_ID = 2048  # bytes; the SPIFFE ID standard's limit for URIs

Fields = Mapping[str, tuple[str, ...]]

_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True, slots=True)
class SpiffeId:
    trust_domain: str
    path: str  # "" or "/seg/seg"

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}{self.path}"


def parse_spiffe_id(text: str) -> SpiffeId | None:
    """The SPIFFE ID ``text`` is, by the standard's rules (lower-case trust domain of
    ``a-z 0-9 . - _``; path segments of ``A-Z a-z 0-9 . - _``, none empty, ``.`` or ``..``;
    no port, user info, query, fragment or percent-encoding), else None."""
    prefix = "spiffe://"
    if len(text) > MAX_SPIFFE_ID or not text.startswith(prefix):
        return None
    domain, slash, path = text[len(prefix) :].partition("/")
    if not _TRUST_DOMAIN.match(domain):
        return None
    if not slash:
        return SpiffeId(domain, "")
    segments = path.split("/")
    if any(s in ("", ".", "..") or not _PATH_SEGMENT.match(s) for s in segments):
        return None
    return SpiffeId(domain, "/" + path)


def is_trust_domain(text: str) -> bool:
    return bool(_TRUST_DOMAIN.match(text))


def spiffe_ids(uris: tuple[str, ...]) -> tuple[str, ...]:
    """The certificate's SPIFFE ID: an X.509-SVID has exactly one URI SAN, and it is one."""
    if len(uris) != 1:
        return ()
    found = parse_spiffe_id(uris[0])
    return (str(found),) if found is not None else ()


@dataclass(frozen=True, slots=True)
class Rule:
    """Values of ``field`` that fully match ``pattern`` (None: every value). For
    ``spiffe.id``, ``trust_domain`` pins the trust domain and ``pattern`` matches the path."""

    field: str
    pattern: re.Pattern[str] | None = None
    trust_domain: str | None = None

    def matches(self, fields: Fields) -> list[tuple[str, dict[str, str]]]:
        """(value, named groups) of every matching value, in certificate order."""
        found: list[tuple[str, dict[str, str]]] = []
        for value in fields.get(self.field, ()):
            subject = value
            if self.field == SPIFFE_FIELD:
                spiffe = parse_spiffe_id(value)
                if spiffe is None or spiffe.trust_domain != self.trust_domain:
                    continue
                subject = spiffe.path
            if self.pattern is None:
                found.append((value, {}))
                continue
            match = self.pattern.fullmatch(subject)
            if match is not None:
                groups = {k: v for k, v in match.groupdict().items() if v is not None}
                found.append((value, groups))
        return found


@dataclass(frozen=True, slots=True)
class GroupRule:
    """Every matching value is a group: ``group`` when set, else ``prefix`` + the value."""

    rule: Rule
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Mapped:
    principal: str
    attributes: dict[str, str]
    rule: int  # index of the identity rule that matched


def map_identity(fields: Fields, rules: Iterable[Rule]) -> Mapped | str:
    """The identity of the first rule that matches, or why there is none (a detail)."""
    for index, rule in enumerate(rules):
        found = rule.matches(fields)
        if not found:
            continue
        distinct = {value for value, _ in found}
        if len(distinct) > 1:
            return f"identity rule {index} matches {len(distinct)} different {rule.field} values"
        value, groups = found[0]
        principal = groups.pop(PRINCIPAL_GROUP, value)
        if not principal:
            return f"identity rule {index} gives an empty principal"
        return Mapped(principal, groups, index)
    return "no identity rule matches the certificate"


def map_groups(fields: Fields, rules: Iterable[GroupRule], prefix: str = "") -> tuple[str, ...]:
    """Every group the rules give, once each, in rule order."""
    groups: list[str] = []
    for rule in rules:
        for value, _ in rule.rule.matches(fields):
            groups.append(rule.group if rule.group is not None else prefix + value)
    return tuple(dict.fromkeys(group for group in groups if group))
