"""`callout policy ...` run in-process, as the command line would run it."""

from __future__ import annotations

import argparse

from callout.cli import policy


def policy_cli(*argv: str) -> int:
    """Parse ``argv`` (``"policy", "check", ...``) and run the command; its exit code."""
    parser = argparse.ArgumentParser()
    policy.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
