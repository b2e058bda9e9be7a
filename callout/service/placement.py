"""The accounts the service can place users into, and checks of a policy against them.

`Placement` (one service configuration's accounts) and `ANY_ACCOUNT` (no configuration given)
are `AccountPlacement`s without keys: enough to decide a login, never to sign one.

A policy is written by account *name*; the settings say which names exist (config mode:
``accounts``; operator mode: ``operator.accounts``), which one is the system account, and which
sign with a scoped signing key. Nothing here stops a load: these are warnings for
``callout policy check --config`` and the service's start-up and reload log.

- a user or group whose account is not configured: every login of it is refused;
- grants into an account with a scoped signing key: nats-server applies the scope's template
  and the user JWT must carry no permissions, so publish/subscribe/response are not used;
- the system account without ``allow_system_account``: every login of it is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from callout.errors import PolicyIssue
from callout.policy.compiler import Entry, Merged
from callout.policy.rules import Rules
from callout.policy.snapshot import PolicySnapshot
from callout.settings import Settings


@dataclass(frozen=True, slots=True)
class Placement:
    """The accounts of one service configuration, by the names policies use."""

    accounts: frozenset[str]
    scoped: frozenset[str] = frozenset()
    system_account: str | None = None
    setting: str = "accounts"  # where a missing name would be added

    def can_place(self, account: str) -> bool:
        return account in self.accounts

    def by_template(self, account: str) -> bool:
        return account in self.scoped

    @classmethod
    def from_settings(cls, settings: Settings, system_account: str | None) -> Placement:
        operator = settings.operator
        if operator is None:
            return cls(frozenset(settings.accounts), system_account=system_account)
        return cls(
            frozenset(operator.accounts),
            frozenset(name for name, account in operator.accounts.items() if account.scoped),
            system_account,
            "operator.accounts",
        )


class _AnyAccount:
    def can_place(self, account: str) -> bool:
        return True

    def by_template(self, account: str) -> bool:
        return False


ANY_ACCOUNT = _AnyAccount()  # placement when no service configuration is given


def _grants(rules: Rules) -> bool:
    return bool(
        rules.pub_allow or rules.pub_deny or rules.sub_allow or rules.sub_deny or rules.response
    )


def _issues(entry: Entry[object], rules: Rules, placement: Placement) -> Iterator[PolicyIssue]:
    account = rules.account
    if not account:
        return
    if account not in placement.accounts:
        yield entry.issue(
            f"account {account!r} is not in the service's {placement.setting}; "
            "every login here is refused"
        )
    elif account in placement.scoped and _grants(rules):
        yield entry.issue(
            f"account {account!r} signs with a scoped signing key: nats-server applies the "
            "scope's template, so these publish/subscribe/response grants are not used"
        )
    if account == placement.system_account and not rules.allow_system_account:
        yield entry.issue(
            f"account {account!r} is the system account and no role here has "
            "allow_system_account; every login here is refused"
        )


def placement_warnings(
    merged: Merged, snapshot: PolicySnapshot, placement: Placement
) -> list[PolicyIssue]:
    """Every warning for users, groups and the default account of a loaded policy."""
    warnings: list[PolicyIssue] = []
    defaults = merged.defaults
    if defaults is not None and defaults.value.account:
        account = defaults.value.account
        if account not in placement.accounts:
            warnings.append(
                defaults.issue(
                    f"account {account!r} is not in the service's {placement.setting}",
                    "account",
                )
            )
    for name, user in merged.users.items():
        compiled = snapshot.users.get(name)
        if compiled is not None:
            warnings.extend(_issues(user, compiled.rules, placement))
    for name, group in merged.groups.items():
        rules = snapshot.groups.get(name)
        if rules is not None:
            warnings.extend(_issues(group, rules, placement))
    return warnings
