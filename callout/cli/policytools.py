"""`callout policy explain|test|diff`: what a policy decides, proven before it is merged.

No running NATS is needed. Credentials for ``explain`` come from stdin or a prompt (password,
token) or a seed file (nkey), never from the command line. ``--config`` uses the service's
settings for the backend chain and the accounts users may be placed into; without it the
static backend is used and any account is accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

from callout.backends.base import Backend
from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.decision import BackendName, Identity
from callout.observability.logs import configure
from callout.policy.compiler import Merged
from callout.policy.intents import client_settings
from callout.policy.loader import check_policy
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.connections import REPORTED_AS
from callout.secretfiles import read_secret
from callout.settings import load_settings
from callout.tools.certlogin import read_chain, with_certificate
from callout.tools.diff import Change, diff
from callout.tools.explain import (
    Explanation,
    GivenIdentity,
    Login,
    build_request,
    explain,
    parse_time,
)
from callout.tools.policysuite import load_tests, suite_files
from callout.tools.policytest import run


def register(actions: Any) -> None:
    """Add ``explain``, ``test`` and ``diff`` to the ``policy`` command."""
    ex = actions.add_parser(
        "explain", help="decide a simulated login and show the rules and claims behind it"
    )
    ex.add_argument("path", type=Path, help="the policy directory")
    who = ex.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="log in with this user name; password from stdin/prompt")
    who.add_argument("--token", action="store_true", help="log in with a token (stdin/prompt)")
    who.add_argument("--nkey-seed-file", type=Path, help="log in with the nkey of this seed file")
    who.add_argument("--identity", help="skip authentication: this principal is verified")
    who.add_argument(
        "--cert-file",
        type=Path,
        help="log in with this client certificate (PEM: the leaf, then intermediates);"
        " the cert backend of --config decides",
    )
    ex.add_argument("--backend", default=BackendName.STATIC.value, help="backend of --identity")
    ex.add_argument("--group", action="append", default=[], help="group of --identity")
    ex.add_argument("--host", default="127.0.0.1", help="client address (default 127.0.0.1)")
    ex.add_argument("--connection-type", choices=sorted(REPORTED_AS), default="STANDARD")
    ex.add_argument("--client-name", default="", help="the connection name the client sends")
    ex.add_argument(
        "--mqtt-client-id", default="", help="the MQTT client id (with --connection-type MQTT)"
    )
    ex.add_argument("--server-name", default="explain")
    ex.add_argument("--server-cluster", default="")
    ex.add_argument("--server-tag", action="append", default=[], help="e.g. az:eu-1")
    ex.add_argument("--at", help="login time, ISO 8601 (default now)")
    ex.add_argument("--config", type=Path, help="service settings: backends and accounts")
    ex.add_argument("--json", action="store_true", help="machine-readable output")
    ex.add_argument("--exit-code", action="store_true", help="exit 1 when the login is denied")
    ex.set_defaults(func=explain_command)

    test = actions.add_parser("test", help="run policy unit tests (YAML) against a policy")
    test.add_argument("path", type=Path, help="the policy directory")
    test.add_argument("tests", type=Path, nargs="+", help="test files or directories")
    test.add_argument("--config", type=Path, help="service settings: backends and accounts")
    test.set_defaults(func=test_command)

    change = actions.add_parser(
        "diff", help="who gains or loses which permissions between two policy trees"
    )
    change.add_argument("old", type=Path, help="the policy directory before the change")
    change.add_argument("new", type=Path, help="the policy directory after the change")
    change.add_argument("--exit-code", action="store_true", help="exit 1 when anything changed")
    change.add_argument("--json", action="store_true", help="machine-readable output")
    change.set_defaults(func=diff_command)


def _load(path: Path) -> tuple[PolicySnapshot, Merged] | None:
    result = check_policy(path)
    if result.snapshot is None or result.merged is None:
        for issue in result.errors:
            print(issue.render(), file=sys.stderr)
        print(f"{path}: the policy does not load", file=sys.stderr)
        return None
    return result.snapshot, result.merged


@contextmanager
def _backends(config: Path | None) -> Iterator[tuple[Sequence[Backend], dict[str, Any]]]:
    """The backend chain and placement rules: from settings, or the static backend alone."""
    verifier = PasswordVerifier(max_workers=1)
    try:
        if config is None:
            yield [StaticBackend(verifier)], {}
            return
        from callout.service.wiring import build_backends  # noqa: PLC0415 - only with --config

        settings = load_settings(config)
        # The backends log each decision; that must not mix with the result (--json) on stdout.
        configure("warning", stream=sys.stderr, cache=False)
        placement = {
            "accounts": frozenset(settings.accounts),
            "system_account": settings.system_account,
        }
        yield build_backends(settings, verifier), placement
    finally:
        verifier.close()


def _secret(what: str) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.read().removesuffix("\n").removesuffix("\r")
    return getpass.getpass(f"{what}: ")


def _login(args: argparse.Namespace) -> Login:
    password = token = seed = ""
    if args.user:
        password = _secret("Password")
    elif args.token:
        token = _secret("Token")
    elif args.nkey_seed_file:
        seed = read_secret(args.nkey_seed_file, "nkey seed")
    return Login(
        user=args.user or "",
        password=password,
        token=token,
        nkey_seed=seed,
        host=args.host,
        connection_type=args.connection_type,
        client_name=args.client_name,
        mqtt_client_id=args.mqtt_client_id,
        server_name=args.server_name,
        server_cluster=args.server_cluster,
        server_tags=tuple(args.server_tag),
    )


def _certificate_chain(path: Path) -> tuple[str, ...] | None:
    """The certificates of ``path`` for `with_certificate`; None (reported) when unusable."""
    try:
        return read_chain(path)
    except ValueError as error:
        print(f"{path}: {error}", file=sys.stderr)
        return None


def explain_command(args: argparse.Namespace) -> int:
    loaded = _load(args.path)
    if loaded is None:
        return 1
    snapshot, merged = loaded
    now = parse_time(args.at) if args.at else time.time()
    request = build_request(_login(args), int(now))
    if args.cert_file:
        certificates = _certificate_chain(args.cert_file)
        if certificates is None:
            return 2
        request = with_certificate(request, certificates)
    with _backends(args.config) as (configured, placement):
        chain = configured
        if args.identity:
            identity = Identity(
                principal=args.identity,
                backend=args.backend,
                groups=tuple(args.group),
                attributes=MappingProxyType({}),
            )
            chain = [GivenIdentity(identity)]
        result = asyncio.run(explain(snapshot, merged, request, chain, now=now, **placement))
    if args.json:
        print(json.dumps(_as_json(result), indent=2, sort_keys=True))
    else:
        print(_as_text(result))
    return 1 if (args.exit_code and not result.decision.allowed) else 0


def _as_json(result: Explanation) -> dict[str, Any]:
    decision = result.decision
    return {
        "decision": "allow" if decision.allowed else "deny",
        "reason": decision.reason.value,
        "detail": decision.detail,
        "backend": decision.backend,
        "principal": decision.principal,
        "account": decision.grant.account if decision.grant else None,
        "matched": [
            {"entry": o.label, "where": o.where, "why": o.why, "grants": list(o.grants)}
            for o in result.origins
        ],
        "conditions": [{"name": c.name, "held": c.held, "detail": c.detail} for c in result.checks],
        "claims": result.claims,
        "inbox_prefix": result.inbox_prefix,
    }


def _as_text(result: Explanation) -> str:
    decision = result.decision
    lines = []
    verdict = "ALLOW" if decision.allowed else "DENY"
    reason = f" ({decision.reason.value}{': ' + decision.detail if decision.detail else ''})"
    lines.append(f"decision: {verdict}{'' if decision.allowed else reason}")
    if result.identity is not None:
        identity = result.identity
        groups = f", groups {', '.join(identity.groups)}" if identity.groups else ""
        lines.append(f"identity: {identity.principal} (backend {identity.backend}{groups})")
    elif decision.principal or decision.backend:
        backend = decision.backend or "none"
        lines.append(f"identity: not verified: {decision.principal} (backend {backend})")
    if result.origins:
        lines.append("matched:")
        for origin in result.origins:
            lines.append(f"  {origin.label}  [{origin.where}]  {origin.why}")
            lines.extend(f"      {grant}" for grant in origin.grants)
    if result.checks:
        lines.append("conditions:")
        for check in result.checks:
            mark = "ok  " if check.held else "FAIL"
            lines.append(f"  {mark} {check.name}: {check.detail}")
    if result.claims is not None:
        lines.append("user claims (iss, iat and jti are added when the service signs them):")
        lines.append(json.dumps(result.claims, indent=2, sort_keys=True))
    if result.inbox_prefix is not None:
        lines.append("client settings (private_inbox: replies arrive only on this inbox prefix):")
        width = max(len(client) for client, _ in client_settings(result.inbox_prefix))
        lines.extend(
            f"  {client + ':':<{width + 1}} {setting}"
            for client, setting in client_settings(result.inbox_prefix)
        )
    return "\n".join(lines)


def test_command(args: argparse.Namespace) -> int:
    loaded = _load(args.path)
    if loaded is None:
        return 1
    snapshot, _ = loaded
    tests, issues = load_tests(suite_files(args.tests))
    for issue in issues:
        print(issue.render())
    if issues:
        print(f"{len(issues)} error(s) in the test files", file=sys.stderr)
        return 1
    if not tests:
        print("no policy tests found", file=sys.stderr)
        return 1
    with _backends(args.config) as (backends, placement):
        outcomes = run(tests, snapshot, backends, now=time.time(), **placement)
    for outcome in outcomes:
        status = "PASS" if outcome.passed else "FAIL"
        print(f"{status} {outcome.test.where}: {outcome.test.case.name}")
        for failure in outcome.failures:
            print(f"     {failure}")
    failed = sum(not outcome.passed for outcome in outcomes)
    print(f"policy tests: {len(outcomes) - failed} passed, {failed} failed")
    return 1 if failed else 0


def diff_command(args: argparse.Namespace) -> int:
    old, new = _load(args.old), _load(args.new)
    if old is None or new is None:
        return 1
    changes = diff(old[0], new[0])
    if args.json:
        print(json.dumps([_change(change) for change in changes], indent=2))
    else:
        current = None
        for change in changes:
            if change.identity != current:
                current = change.identity
                print(current)
            print(f"  {change.effect:8} {change.what}")
        if not changes:
            print("no identity gains or loses anything")
    return 1 if (args.exit_code and changes) else 0


def _change(change: Change) -> dict[str, str]:
    return {"identity": change.identity, "effect": change.effect, "what": change.what}
