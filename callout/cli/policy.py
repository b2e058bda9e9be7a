"""`callout policy check|schema` and `callout hash-password`: the security team's tools."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from callout.cli.checkreport import report
from callout.cli.policykv import register as register_kv
from callout.cli.policytools import register as register_tools
from callout.credentials.passwords import hash_password
from callout.errors import PolicyIssue
from callout.policy.loader import check_policy
from callout.policy.schema import policy_schema_text
from callout.policy.versionlint import XKEY_CODE, version_warnings, xkey_warning
from callout.protocol.versions import parse_version
from callout.settings import load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``policy`` (check, schema, explain, test, diff) and ``hash-password``."""
    policy = subparsers.add_parser(
        "policy", help="check, explain, test and diff policy files; print their schema"
    )
    actions = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a policy directory (file:line messages)")
    check.add_argument("path", type=Path, help="the policy directory")
    check.add_argument("--strict", action="store_true", help="warnings fail the check too")
    check.add_argument(
        "--config",
        type=Path,
        help="the service's settings: also warn about accounts it cannot place users into",
    )
    check.add_argument(
        "--verbose", "-v", action="store_true", help="also list acknowledged warnings"
    )
    check.add_argument(
        "--server-version",
        metavar="X.Y.Z",
        help="also warn about rules this nats-server version would not hold (advisories)",
    )
    check.set_defaults(func=check_command)
    schema = actions.add_parser("schema", help="print the JSON schema of a policy file")
    schema.add_argument("--output", type=Path, help="write the schema to this file")
    schema.set_defaults(func=schema_command)
    register_tools(actions)
    register_kv(actions)
    hasher = subparsers.add_parser(
        "hash-password", help="hash a password for a policy file (argon2id; stdin or prompt)"
    )
    hasher.set_defaults(func=hash_password_command)


def check_command(args: argparse.Namespace) -> int:
    version = None
    if args.server_version is not None:
        version = parse_version(args.server_version)
        if version is None:
            print(
                f"policy check: --server-version {args.server_version!r} is not a version"
                " like 2.12.7",
                file=sys.stderr,
            )
            return 2
    result = check_policy(args.path)
    settings = load_settings(args.config) if args.config is not None else None
    if version is not None and result.merged is not None:
        shown = args.server_version.strip()
        result.warnings.extend(version_warnings(result.merged, version, shown))
        xkey = xkey_warning(version, shown)
        if settings is not None and settings.keys.xkey_seed_file is not None and xkey:
            where = "keys.xkey_seed_file"
            result.warnings.append(PolicyIssue(str(args.config), None, where, xkey, XKEY_CODE))
    return report(result, settings, strict=args.strict, verbose=args.verbose)


def schema_command(args: argparse.Namespace) -> int:
    text = policy_schema_text()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


def _read_password() -> str | None:
    if not sys.stdin.isatty():
        text = sys.stdin.read()
        return text.removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        print("hash-password: the passwords differ", file=sys.stderr)
        return None
    return first


def hash_password_command(args: argparse.Namespace) -> int:
    password = _read_password()
    if password is None:
        return 1
    if not password:
        print("hash-password: the password is empty", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0
