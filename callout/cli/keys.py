"""`callout keys generate` and `callout nats-config`: the keys and the server-side block."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from callout.errors import ConfigError
from callout.protocol.nkeys import CurveKeyPair, KeyPair, Role
from callout.secrets import load_curve_key, load_signing_key, write_secret
from callout.settings import load_settings


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="key management")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = actions.add_parser(
        "generate", help="create the issuer account seed and the xkey seed (files, mode 0600)"
    )
    generate.add_argument("--dir", type=Path, default=Path(), help="where to write (default .)")
    generate.add_argument("--no-xkey", action="store_true", help="do not create an xkey seed")
    generate.set_defaults(func=generate_command)

    config = commands.add_parser(
        "nats-config", help="print the nats-server authorization block for the configured keys"
    )
    source = config.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="the service's YAML settings file")
    source.add_argument("--issuer-seed-file", type=Path, help="issuer account seed file")
    config.add_argument("--xkey-seed-file", type=Path, help="xkey seed file (enables encryption)")
    config.add_argument("--account", default="AUTH", help="callout account (default AUTH)")
    config.add_argument("--auth-user", action="append", help="auth user name(s) (default auth)")
    config.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    config.set_defaults(func=nats_config_command)


def generate_command(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    directory.mkdir(parents=True, exist_ok=True)
    targets: list[tuple[Path, str, str]] = []
    issuer = KeyPair.generate(Role.ACCOUNT)
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


def authorization_block(
    issuer: str, xkey: str | None, account: str, auth_users: list[str], timeout: float
) -> str:
    """The nats-server `authorization` block for a config-mode callout."""
    users = ", ".join(auth_users)
    lines = [
        "authorization {",
        f"  timeout: {timeout:g}",
        "  auth_callout {",
        f"    issuer: {issuer}",
        f"    auth_users: [ {users} ]",
        f"    account: {account}",
    ]
    if xkey:
        lines.append(f"    xkey: {xkey}")
    lines += ["  }", "}"]
    return "\n".join(lines)


def nats_config_command(args: argparse.Namespace) -> int:
    users: list[str] = args.auth_user or []
    if args.config is not None:
        settings = load_settings(args.config)
        issuer_file, xkey_file = settings.keys.issuer_seed_file, settings.keys.xkey_seed_file
        if not users and settings.nats.user:
            users = [settings.nats.user]
    else:
        issuer_file, xkey_file = args.issuer_seed_file, args.xkey_seed_file
    issuer = load_signing_key(issuer_file, "issuer seed").public_key
    xkey = load_curve_key(xkey_file).public_key if xkey_file else None
    users = users or ["auth"]
    print(f"# The service logs in as an auth user of account {args.account}; define it there:")
    print(f"#   accounts {{ {args.account} {{ users: [ {{user: {users[0]}, password: ...}} ] }} }}")
    print(authorization_block(issuer, xkey, args.account, users, args.timeout))
    return 0
