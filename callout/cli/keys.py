"""`callout keys generate` and `callout nats-config`: the keys and the server-side block."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from callout.cli.operator_config import OperatorPlan, SignerKey, operator_instructions
from callout.errors import ConfigError, UsageError
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole
from callout.secretfiles import load_curve_key, load_signing_key, write_secret
from callout.serverconf import accounts_block, authorization_block, placeholder_nkey
from callout.service.keyring import load_operator_issuer
from callout.service.login import load_creds
from callout.service.operator_issuer import OperatorModeIssuer
from callout.settings import Mode, OperatorSettings, Settings, load_settings


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="key management")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = actions.add_parser(
        "generate", help="create the issuer account seed and the xkey seed (files, mode 0600)"
    )
    generate.add_argument("--dir", type=Path, default=Path(), help="where to write (default .)")
    generate.add_argument("--no-xkey", action="store_true", help="do not create an xkey seed")
    generate.add_argument(
        "--no-issuer",
        action="store_true",
        help="do not create an issuer seed (operator mode: nsc makes the account keys)",
    )
    generate.set_defaults(func=generate_command)

    config = commands.add_parser(
        "nats-config",
        help="print the nats-server authorization block (operator mode: the nsc commands) for "
        "the configured keys",
    )
    source = config.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, help="the service's YAML settings file")
    source.add_argument("--issuer-seed-file", type=Path, help="issuer account seed file")
    config.add_argument("--xkey-seed-file", type=Path, help="xkey seed file (enables encryption)")
    config.add_argument(
        "--account", default="AUTH", help="callout account (nsc: its name; default AUTH)"
    )
    config.add_argument(
        "--auth-user",
        action="append",
        help="auth user name(s) (default auth); operator mode: user public key(s) (default: the "
        "user of nats.creds_file)",
    )
    config.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    config.add_argument(
        "--operator",
        action="store_true",
        help="operator mode: print the nsc commands and server config instead",
    )
    config.add_argument(
        "--allowed-account",
        action="append",
        help="operator mode: target account public key(s), or '*' (default: operator.accounts)",
    )
    config.set_defaults(func=nats_config_command)


def generate_command(args: argparse.Namespace) -> int:
    if args.no_issuer and args.no_xkey:
        raise UsageError("--no-issuer and --no-xkey together leave nothing to generate")
    directory: Path = args.dir
    directory.mkdir(parents=True, exist_ok=True)
    targets: list[tuple[Path, str, str]] = []
    if not args.no_issuer:
        issuer = KeyPair.generate(KeyRole.ACCOUNT)
        targets.append((directory / "issuer.nk", issuer.seed, issuer.public_key))
    if not args.no_xkey:
        curve = CurveKeyPair.generate()
        targets.append((directory / "xkey.nk", curve.seed, curve.public_key))
    existing = [str(path) for path, _, _ in targets if path.exists()]
    if existing:
        raise ConfigError(f"refusing to overwrite {', '.join(existing)}")
    for path, seed, public in targets:
        write_secret(path, seed)
        print(f"{path}: {public}")
    return 0


def nats_config_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.config) if args.config is not None else None
    if args.operator or (settings is not None and settings.mode is Mode.OPERATOR):
        print(operator_instructions(operator_plan(args, settings)))
        return 0
    users: list[str] = args.auth_user or []
    if settings is not None:
        issuer_file, xkey_file = settings.keys.issuer_seed_file, settings.keys.xkey_seed_file
        if not users and settings.nats.user:
            users = [settings.nats.user]
    else:
        issuer_file, xkey_file = args.issuer_seed_file, args.xkey_seed_file
    if issuer_file is None:
        raise UsageError("needs --config FILE or --issuer-seed-file FILE")
    issuer = load_signing_key(issuer_file, "issuer seed").public_key
    xkey = load_curve_key(xkey_file).public_key if xkey_file else None
    users = users or ["auth"]
    targets = list(settings.accounts) if settings is not None else []
    print(
        f"# nats-server config for config mode. The service logs in as {users[0]} of account "
        f"{args.account}; the server\n# reads its password from the environment: "
        "NATS_AUTH_PASSWORD = the content of nats.password_file."
    )
    if not targets:
        print("# Add the accounts users are placed into (settings `accounts`), one per line.")
    service_user = f"{{ user: {users[0]}, password: $NATS_AUTH_PASSWORD }}"
    print(accounts_block(args.account, service_user, targets, placeholder_nkey()))
    print(authorization_block(issuer, xkey, args.account, users, args.timeout))
    return 0


def operator_plan(args: argparse.Namespace, settings: Settings | None) -> OperatorPlan:
    """The operator-mode plan from the settings (seeds are read and checked) and the flags."""
    users: list[str] = list(args.auth_user or [])
    allowed: list[str] = list(args.allowed_account or [])
    xkey_file: Path | None = args.xkey_seed_file
    signing: list[SignerKey] = []
    system_account = None
    notes: list[str] = []
    if settings is not None:
        if settings.operator is None:
            raise ConfigError(f"{args.config}: has no operator section (mode: operator)")
        issuer = load_operator_issuer(settings.operator)
        if not users and settings.nats.creds_file is not None:
            users = [load_creds(settings.nats.creds_file, now=time.time()).user]
            notes.append(f"auth user = the user of {settings.nats.creds_file}")
        callout_key = issuer.callout_account
        allowed = allowed or [
            key.public_key
            for key in settings.operator.accounts.values()
            if key.public_key != callout_key
        ]
        signing = _signing_keys(args.account, settings.operator, issuer)
        xkey_file = xkey_file or settings.keys.xkey_seed_file
        system_account = settings.system_account
    if not users or not allowed:
        raise UsageError(
            "--operator needs --config with an operator section, or --auth-user and "
            "--allowed-account"
        )
    return OperatorPlan(
        callout_account=args.account,
        auth_users=users,
        allowed_accounts=allowed,
        signing_keys=signing,
        xkey=load_curve_key(xkey_file).public_key if xkey_file else None,
        system_account=system_account,
        timeout=args.timeout,
        notes=notes,
    )


def _signing_keys(
    callout_name: str, operator: OperatorSettings, issuer: OperatorModeIssuer
) -> list[SignerKey]:
    out = [SignerKey(callout_name, key) for key in operator.callout_account.signing_keys]
    for name, account in operator.accounts.items():
        active = issuer.accounts[name].key.public_key
        out += [
            SignerKey(name, key, scoped=account.scoped and key == active)
            for key in account.signing_keys
        ]
    return out
