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
from callout.policy.loader import check_policy
from callout.policy.schema import policy_schema_text
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
    result = check_policy(args.path)
    settings = load_settings(args.config) if args.config is not None else None
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
