"""Printing a policy check: the one output of `policy check`, `policy push` and `policy
rollback` (``file:line: path: message`` lines, then a summary on stderr)."""

from __future__ import annotations

import sys

from callout.policy.texts import CheckResult
from callout.service.placement import Placement, placement_warnings
from callout.service.wiring import system_account_name
from callout.settings import Settings


def report(
    result: CheckResult, settings: Settings | None, *, strict: bool, verbose: bool = False
) -> int:
    """Print what a check found (with ``settings``: also the accounts it cannot place users
    into), then the summary; the exit code of `policy check` (1: errors, or warnings when
    ``strict``). `policy push` and `policy rollback` check the same way."""
    if settings is not None and result.snapshot is not None and result.merged is not None:
        placement = Placement.from_settings(settings, system_account_name(settings))
        result.warnings.extend(placement_warnings(result.merged, result.snapshot, placement))
    for issue in result.errors:
        print(issue.render())
    for issue in result.warnings:
        print(issue.render("warning"))
    for issue in result.notes:
        print(issue.render("note"))
    if verbose:
        for issue in result.acknowledged:
            print(issue.render("acknowledged"))
    errors, warnings = len(result.errors), len(result.warnings)
    summary = f"{errors} error(s), {warnings} warning(s)"
    if result.acknowledged:
        summary += f", {len(result.acknowledged)} acknowledged"
    if result.snapshot is not None:
        snapshot = result.snapshot
        users, groups, tokens = len(snapshot.users), len(snapshot.groups), len(snapshot.tokens)
        summary += f"; {users} user(s), {groups} group(s), {tokens} token(s)"
        summary += f", digest {snapshot.digest[:12]}"
    print(summary, file=sys.stderr)
    failed = errors > 0 or (strict and warnings > 0)
    return 1 if failed else 0
