"""`callout token new|pepper`: API tokens for the token backend.

``new`` prints the token exactly once (it is not stored anywhere) and the policy entry to
paste, which holds only its HMAC under the pepper. The pepper comes from its secret file,
never from the command line.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from callout.backends.tokens import read_pepper
from callout.credentials.tokens import hmac_hash, new_token
from callout.errors import ConfigError
from callout.policy.fields import DurationWithUnit, RoleName, Timestamp
from callout.secretfiles import write_secret
from callout.settings import TokenBackendSettings, load_settings

DEFAULT_PREFIX = "nac"


def register(commands: Any) -> None:
    token = commands.add_parser("token", help="API tokens for the token backend")
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new", help="make a token: print it once, and the policy entry to paste"
    )
    source = new.add_mutually_exclusive_group(required=True)
    source.add_argument("--pepper-file", type=Path, help="the token backend's pepper file")
    source.add_argument("--config", type=Path, help="settings file with a token backend")
    new.add_argument(
        "--prefix", help=f"token prefix (default: from --config, else {DEFAULT_PREFIX})"
    )
    new.add_argument("--id", dest="token_id", help="token id (default: 10 random characters)")
    new.add_argument("--owner", required=True, help="who answers for the token")
    new.add_argument("--roles", default="", help="comma-separated role names")
    new.add_argument("--account", help="target account")
    new.add_argument("--expires", help="2027-01-31, 2027-01-31T12:00:00Z, or from now: 90d")
    new.set_defaults(func=new_command)
    pepper = actions.add_parser("pepper", help="write a new random pepper file (mode 0600)")
    pepper.add_argument("--file", type=Path, required=True, help="where to write it")
    pepper.set_defaults(func=pepper_command)


def _token_settings(path: Path) -> TokenBackendSettings:
    settings = load_settings(path)
    for backend in settings.backends:
        if isinstance(backend, TokenBackendSettings):
            return backend
    raise ConfigError(f"{path}: no backend of type token in backends")


def _expires(text: str, now: datetime) -> str:
    try:
        when = TypeAdapter(Timestamp).validate_python(text)
    except ValidationError:
        try:
            when = now + TypeAdapter(DurationWithUnit).validate_python(text)
        except ValidationError:
            raise ConfigError(
                f"--expires {text!r}: expected 2027-01-31, 2027-01-31T12:00:00Z or 90d"
            ) from None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def policy_entry(
    token_id: str,
    stored: str,
    *,
    owner: str,
    roles: list[str],
    account: str | None,
    expires: str,
) -> str:
    """The YAML for one ``tokens:`` entry (strings JSON-quoted: valid YAML, no surprises)."""
    lines = ["tokens:", f"  {token_id}:", f"    hash: {json.dumps(stored)}"]
    lines.append(f"    owner: {json.dumps(owner)}")
    if roles:
        lines.append(f"    roles: [{', '.join(roles)}]")
    if account:
        lines.append(f"    account: {json.dumps(account)}")
    if expires:
        lines.append(f'    expires: "{expires}"')
    return "\n".join(lines)


def new_command(args: argparse.Namespace) -> int:
    if args.config is not None:
        backend = _token_settings(args.config)
        pepper_file, prefix = backend.pepper_file, args.prefix or backend.prefix
    else:
        pepper_file, prefix = args.pepper_file, args.prefix or DEFAULT_PREFIX
    try:
        TokenBackendSettings(type="token", prefix=prefix, pepper_file=pepper_file)
        names = [name.strip() for name in args.roles.split(",") if name.strip()]
        roles = [TypeAdapter(RoleName).validate_python(name) for name in names]
    except ValidationError as error:
        raise ConfigError(f"invalid --prefix or --roles: {error.errors()[0]['msg']}") from None
    try:
        token = new_token(prefix, args.token_id)
    except ValueError as error:
        raise ConfigError(f"--id: {error}") from None
    expires = _expires(args.expires, datetime.now(UTC)) if args.expires else ""
    stored = hmac_hash(read_pepper(pepper_file), token.text)
    print("# The token, shown this once: put it in your secret store now.", file=sys.stderr)
    print(token.text, flush=True)
    print(
        "# Paste this entry into a policy file (it holds no secret):", file=sys.stderr, flush=True
    )
    print(
        policy_entry(
            token.id, stored, owner=args.owner, roles=roles, account=args.account, expires=expires
        ),
        flush=True,
    )
    return 0


def pepper_command(args: argparse.Namespace) -> int:
    try:
        write_secret(args.file, base64.b64encode(secrets.token_bytes(32)).decode())
    except FileExistsError:
        raise ConfigError(f"refusing to overwrite {args.file}") from None
    print(f"{args.file}: a new pepper (every token hashed with the old one must be re-issued)")
    return 0
