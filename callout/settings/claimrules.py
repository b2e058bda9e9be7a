"""What an OIDC issuer's tokens must claim (``require``), and the pin every issuer needs.

A rule maps a claim path to what its value must be: a string (exactly that), a list (any
one of them) or ``{glob: pattern}`` / ``{glob: [patterns]}`` (shell-style, case-sensitive;
``*`` also matches ``/``). Paths are dotted (``kubernetes.io.namespace``: at each level the
longest key that matches wins, so keys holding dots need no quoting; a number indexes a
list). A claim that is a list passes when one of its items does.

**The pin.** An issuer such as GitHub Actions signs tokens for every repository on GitHub,
and a cluster's issuer for every service account in it: trusting the issuer alone admits all
of them. So every issuer needs at least one rule on a *workload claim* (any claim but the
token's own mechanics, `MECHANICS`) that is not a bare ``*``, or ``allow_any_subject`` with
the reason why admitting every subject of that issuer is meant.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Claims every token of an issuer carries whoever it names: a rule on them pins nothing.
MECHANICS = frozenset({"iss", "aud", "exp", "iat", "nbf", "jti", "typ", "auth_time"})
_ANY = frozenset({"*", "**"})

ClaimPath = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^.\s](\S*[^.\s])?$")
]
ClaimValue = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class GlobRule(BaseModel):
    """``{glob: "refs/heads/*"}``: the claim matches one of the shell-style patterns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    glob: ClaimValue | list[ClaimValue] = Field(description="one pattern or a list of them")

    @property
    def patterns(self) -> tuple[str, ...]:
        return (self.glob,) if isinstance(self.glob, str) else tuple(self.glob)


ClaimRule = ClaimValue | Annotated[list[ClaimValue], Field(min_length=1)] | GlobRule
RequireRules = dict[ClaimPath, ClaimRule]


def pins(rules: RequireRules) -> list[str]:
    """The claim paths of ``rules`` that pin a workload (see the module docstring)."""
    out = []
    for path, rule in rules.items():
        if path in MECHANICS:
            continue
        if isinstance(rule, GlobRule) and any(p in _ANY for p in rule.patterns):
            continue
        out.append(path)
    return out


def pin_problem(issuer: str, rules: RequireRules, allow_any_subject: str | None) -> str | None:
    """Why ``issuer`` is trusted too broadly, or None."""
    if allow_any_subject is not None or pins(rules):
        return None
    return (
        f"issuer {issuer!r} has no require rule on a workload claim (sub, repository,"
        " kubernetes.io.namespace, ...): every token it signs for anyone would be accepted."
        " Pin one, e.g. require: {repository: org/app}, or set allow_any_subject to the"
        " reason why every subject of this issuer may log in"
    )
