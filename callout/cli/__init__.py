"""The `callout` command line: one subcommand per task, each returning an exit code.

Exit codes: 0 success, 1 failure (a check failed, a runtime error), 2 usage, 78 configuration
that cannot work (EX_CONFIG).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from callout import __version__
from callout.cli import bench, keys, policy, run, sessions, token, verify
from callout.errors import ConfigError, UsageError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callout", description="NATS auth-callout service with policy backends."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run.register(commands)
    policy.register(commands)
    keys.register(commands)
    token.register(commands)
    bench.register(commands)
    sessions.register(commands)
    verify.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as error:
        print(f"callout: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except UsageError as error:
        print(f"callout {args.command}: {error} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        # A file the command writes or reads at run time (`--output`, `--dir`): one line naming
        # the path and the reason, never a traceback and never the file's contents.
        where = f"{error.filename}: " if error.filename else ""
        print(f"callout {args.command}: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return code
