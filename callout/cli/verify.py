"""`callout verify`: the preflight an operator runs before going live (`callout.tools.verify`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from callout.errors import UsageError
from callout.observability import logs
from callout.settings import load_settings
from callout.tools.checklist import passed, render_json, render_text
from callout.tools.verify import ProbeLogin, verify


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "verify",
        help="check settings, keys and server against each other with a real test login",
    )
    parser.add_argument("--config", type=Path, required=True, help="the service's YAML settings")
    parser.add_argument("--login-user", help="user name of the test login (not a secret)")
    parser.add_argument(
        "--login-password-file", type=Path, help="file holding the test login's password"
    )
    parser.add_argument("--login-token-file", type=Path, help="file holding a test token")
    parser.add_argument(
        "--expect", choices=("allow", "deny"), help="the decision the test login must get"
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds the test login may take (default 5)"
    )
    parser.add_argument("--json", action="store_true", help="print the checklist as JSON")
    parser.set_defaults(func=verify_command)


def _login(args: argparse.Namespace) -> ProbeLogin | None:
    if args.login_password_file is not None and args.login_user is None:
        raise UsageError("--login-password-file needs --login-user")
    if args.login_token_file is not None and args.login_password_file is not None:
        raise UsageError("give --login-password-file or --login-token-file, not both")
    if args.login_user is None and args.login_token_file is None:
        if args.expect is not None:
            raise UsageError("--expect needs a test login (--login-user or --login-token-file)")
        return None
    return ProbeLogin(args.login_user, args.login_password_file, args.login_token_file)


def verify_command(args: argparse.Namespace) -> int:
    login = _login(args)
    if not 0 < args.timeout <= 60:  # noqa: PLR2004 - a bounded wait
        raise UsageError("--timeout must be between 0 and 60 seconds")
    settings = load_settings(args.config)
    # The checklist owns stdout (--json is parsed by machines); warnings go to stderr.
    logs.configure("warning", settings.log.format, stream=sys.stderr)
    checks = asyncio.run(verify(settings, login, expect=args.expect, wait=args.timeout))
    print(render_json(checks) if args.json else render_text(checks))
    return 0 if passed(checks) else 1
