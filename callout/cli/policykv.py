"""`callout policy push|history|rollback`: policies distributed through a JetStream KV bucket.

``push`` checks a policy directory exactly as `policy check` does (``--strict`` too) and, only
if it passes, writes it as one bundle (a new revision); ``rollback REV`` checks revision REV
again and pushes its files as a new revision; ``history`` lists the revisions the bucket
keeps. The bucket comes from ``--config`` (``policy.kv``) or ``--bucket``; the connection from
the flags (``--server``, ``--creds`` or ``--login`` with ``--password-file``), else from
``--config``'s ``nats`` section.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from pydantic import ValidationError

from callout.cli.checkreport import report
from callout.errors import PolicyError, UsageError
from callout.policy.bundle import MAX_PUSHED_BY, PolicyBundle, encode_bundle, make_bundle
from callout.policy.loader import read_policy
from callout.policy.texts import check_texts
from callout.service.connector import connect_options
from callout.service.policystore import Revision, history, open_bucket, put_bundle, revision
from callout.settings import NatsSettings, PolicyKvSettings, Settings, load_settings

T = TypeVar("T")
EXIT_FAILURE = 1
_CONNECT_TIMEOUT = 5.0
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def register(actions: Any) -> None:
    """Add ``push``, ``history`` and ``rollback`` to the ``policy`` command."""
    push = actions.add_parser(
        "push", help="check a policy directory and push it to the policy bucket (JetStream KV)"
    )
    push.add_argument("path", type=Path, help="the policy directory")
    _checking(push)
    _bucket(push)
    push.set_defaults(func=push_command)
    listing = actions.add_parser("history", help="list the revisions the policy bucket keeps")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    _bucket(listing)
    listing.set_defaults(func=history_command)
    back = actions.add_parser(
        "rollback", help="check an older revision again and push it as the newest"
    )
    back.add_argument("revision", type=int, help="the revision to restore (see policy history)")
    _checking(back)
    _bucket(back)
    back.set_defaults(func=rollback_command)


def _checking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true", help="warnings refuse the push too")
    parser.add_argument(
        "--by", help="who pushes (kept in the bundle; default user@host of this shell)"
    )


def _bucket(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help="the service's settings: policy.kv (bucket), nats (servers, login), accounts",
    )
    parser.add_argument("--bucket", help="the KV bucket (default policy.kv.bucket)")
    parser.add_argument(
        "--server", action="append", help="NATS URL (repeatable; default nats.servers)"
    )
    parser.add_argument("--creds", type=Path, help="creds file to log in with")
    parser.add_argument("--login", help="user name to log in with (with --password-file)")
    parser.add_argument("--password-file", type=Path, help="file holding the password")


def push_command(args: argparse.Namespace) -> int:
    settings = _settings(args)
    read = read_policy(args.path)
    result = check_texts(
        read.texts, source=str(args.path), unreadable=read.unreadable, missing=read.missing
    )
    if report(result, settings, strict=args.strict) != 0:
        print(f"callout policy push: {args.path} refused; nothing was pushed", file=sys.stderr)
        return EXIT_FAILURE
    bundle = _bundle(read.texts, args.by)
    if bundle is None:
        return EXIT_FAILURE
    kv_settings = _kv(args, settings)

    async def push(kv: Any) -> int:
        return await put_bundle(kv, bundle)

    number = _run(args, settings, kv_settings, push, create=True)
    if number is None:
        return EXIT_FAILURE
    print(_pushed(number, bundle, kv_settings.bucket))
    return 0


def history_command(args: argparse.Namespace) -> int:
    settings = _settings(args)
    revisions = _run(args, settings, _kv(args, settings), history)
    if revisions is None:
        return EXIT_FAILURE
    if not args.json:
        print("REVISION\tDIGEST\tSTORED_AT\tSIZE\tPUSHED_BY")
    for entry in revisions:
        print(_row(entry, as_json=args.json))
    return 0


def rollback_command(args: argparse.Namespace) -> int:
    settings = _settings(args)
    kv_settings = _kv(args, settings)

    async def find(kv: Any) -> Revision | None:
        return await revision(kv, args.revision)

    found = _run(args, settings, kv_settings, find)
    if found is None or found.bundle is None:
        why = "not in the bucket" if found is None else found.problem
        print(f"callout policy rollback: revision {args.revision}: {why}", file=sys.stderr)
        return EXIT_FAILURE
    result = check_texts(found.bundle.files, source=f"revision {args.revision}")
    if report(result, settings, strict=args.strict) != 0:
        print(
            f"callout policy rollback: revision {args.revision} refused; nothing was pushed",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    by = f"{_pusher(args.by)[: MAX_PUSHED_BY - 30]} (rollback to {args.revision})"
    bundle = _bundle(dict(found.bundle.files), by)
    if bundle is None:
        return EXIT_FAILURE

    async def push(kv: Any) -> int:
        return await put_bundle(kv, bundle)

    number = _run(args, settings, kv_settings, push)
    if number is None:
        return EXIT_FAILURE
    print(_pushed(number, bundle, kv_settings.bucket))
    return 0


def _settings(args: argparse.Namespace) -> Settings | None:
    return load_settings(args.config) if args.config is not None else None


def _kv(args: argparse.Namespace, settings: Settings | None) -> PolicyKvSettings:
    kv = settings.policy.kv if settings is not None else PolicyKvSettings()
    if args.bucket:
        try:
            kv = PolicyKvSettings.model_validate({**kv.model_dump(), "bucket": args.bucket})
        except ValidationError:
            raise UsageError(f"--bucket {args.bucket!r}: letters, digits, '_' and '-'") from None
    return kv


def _connection(args: argparse.Namespace, settings: Settings | None) -> NatsSettings:
    base = settings.nats if settings is not None else NatsSettings()
    update: dict[str, Any] = {"name": "callout-policy-cli"}
    if args.server:
        update["servers"] = args.server
    if args.creds and args.login:
        raise UsageError("--creds or --login, not both")
    if args.creds or args.login:  # a login of its own replaces the settings' one
        update |= {"creds_file": args.creds, "user": args.login}
        update["password_file"] = args.password_file
    elif args.password_file:
        raise UsageError("--password-file needs --login")
    try:
        return NatsSettings.model_validate({**base.model_dump(), **update})
    except ValidationError as error:
        problem = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
        raise UsageError(problem) from None


def _run(
    args: argparse.Namespace,
    settings: Settings | None,
    kv_settings: PolicyKvSettings,
    action: Callable[[Any], Awaitable[T]],
    *,
    create: bool = False,
) -> T | None:
    """Connect, open the bucket, run ``action`` on it; None after printing why it failed."""
    nats_settings = _connection(args, settings)
    options = connect_options(nats_settings)
    options |= {"allow_reconnect": False, "connect_timeout": _CONNECT_TIMEOUT}

    async def main() -> T:
        async def quiet(error: Exception) -> None:  # reported once, below
            del error

        nc = await asyncio.wait_for(nats.connect(**options, error_cb=quiet), _CONNECT_TIMEOUT * 2)
        try:
            kv = await open_bucket(nc.jetstream(), kv_settings, create=create)
            return await action(kv)
        finally:
            await nc.close()

    command = f"callout policy {args.policy_command}"
    try:
        return asyncio.run(main())
    except nats.js.errors.BucketNotFoundError:
        print(f"{command}: no bucket {kv_settings.bucket!r} (push creates it)", file=sys.stderr)
    except PolicyError as error:
        print(f"{command}: {error}", file=sys.stderr)
    except (OSError, TimeoutError, nats.errors.Error) as error:
        servers = ", ".join(nats_settings.servers)
        detail = str(error) or type(error).__name__
        print(f"{command}: bucket {kv_settings.bucket!r} at {servers}: {detail}", file=sys.stderr)
    return None


def _bundle(files: dict[str, bytes] | dict[str, str], by: str | None) -> PolicyBundle | None:
    try:
        bundle = make_bundle(dict(files), pushed_by=_pusher(by), pushed_at=datetime.now(UTC))
        encode_bundle(bundle)  # the size limit, before connecting
    except PolicyError as error:
        for issue in error.issues:
            print(issue.render(), file=sys.stderr)
        print("callout policy: not a bundle; nothing was pushed", file=sys.stderr)
        return None
    return bundle


def _pusher(by: str | None) -> str:
    if by is None:
        try:
            by = f"{getpass.getuser()}@{socket.gethostname()}"
        except (KeyError, OSError):  # no user name in a bare container
            by = f"unknown@{socket.gethostname()}"
    return _UNPRINTABLE.sub("?", by)[:MAX_PUSHED_BY] or "unknown"


def _pushed(number: int, bundle: PolicyBundle, bucket: str) -> str:
    return (
        f"pushed revision {number} to bucket {bucket}: digest {bundle.digest[:12]}, "
        f"{len(bundle.files)} file(s), {bundle.size} bytes, by {bundle.pushed_by}"
    )


def _row(entry: Revision, *, as_json: bool) -> str:
    bundle = entry.bundle
    stored = entry.stored_at.strftime("%Y-%m-%dT%H:%M:%SZ") if entry.stored_at else "-"
    digest = bundle.digest if bundle is not None else ""
    by = bundle.pushed_by if bundle is not None else f"({entry.problem})"
    if as_json:
        fields = {"revision": entry.revision, "digest": digest, "stored_at": stored}
        fields |= {"size": entry.size, "pushed_by": by, "valid": bundle is not None}
        return json.dumps(fields, sort_keys=True)
    return f"{entry.revision}\t{digest[:12] or '-'}\t{stored}\t{entry.size}\t{by}"
