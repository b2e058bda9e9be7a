"""`callout sessions list|kick|revoke`: the live sessions of every replica, over NATS.

Each replica answers for the grants it issued (`callout.sessions.api`); this command sends
one request and gathers every answer that arrives within ``--wait``. Logs in like the
service does: ``--creds FILE`` or ``--user NAME --password-file FILE`` (never a secret in argv).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats

from callout.secretfiles import read_secret
from callout.settings import parse_duration

MAX_REPLIES = 1000
EXIT_FAILURE = 1
EXIT_USAGE = 2


def register(commands: Any) -> None:
    parser = commands.add_parser("sessions", help="list, kick or revoke live sessions")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, text in (
        ("list", "who is connected, under which grant, since and until when"),
        ("kick", "end the matching connections now (they may log in again)"),
        ("revoke", "refuse an identity until a time, and end its connections"),
    ):
        sub = verbs.add_parser(verb, help=text)
        _connection(sub)
        sub.add_argument("--user", help="a principal (user name, subject) of any backend")
        sub.add_argument("--token", help="an API token id")
        sub.add_argument("--group", help="a directory or IdP group")
        if verb == "list":
            sub.add_argument("--account", help="only sessions in this account")
            sub.add_argument("--backend", help="only sessions of this backend")
            sub.add_argument("--json", action="store_true", help="one JSON object per line")
        if verb == "revoke":
            sub.add_argument(
                "--for", dest="duration", required=True, help="how long, e.g. 30m, 12h, 7d"
            )
            sub.add_argument("--note", default="", help="why (kept in the deny list)")
        sub.set_defaults(func=sessions_command)


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default="nats://127.0.0.1:4222", help="NATS URL")
    parser.add_argument("--creds", type=Path, help="creds file to log in with")
    parser.add_argument("--login", help="user name to log in with (with --password-file)")
    parser.add_argument("--password-file", type=Path, help="file holding the password")
    parser.add_argument("--subject", default="callout.sessions", help="the API subject prefix")
    parser.add_argument("--wait", default="1s", help="how long to gather answers (default 1s)")


def _request(args: argparse.Namespace) -> dict[str, Any]:
    chosen = {k: v for k in ("user", "token", "group") if (v := getattr(args, k, None))}
    if args.verb == "list":
        extra = {k: v for k in ("account", "backend") if (v := getattr(args, k, None))}
        return chosen | extra
    if len(chosen) != 1:
        raise ValueError(f"{args.verb} needs exactly one of --user, --token, --group")
    if args.verb == "kick":
        return chosen
    ((kind, name),) = chosen.items()
    until = int(time.time() + parse_duration(args.duration))
    return {"kind": kind, "name": name, "until": until, "note": args.note}


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "servers": [args.server],
        "allow_reconnect": False,
        "max_reconnect_attempts": 1,  # nats-py reads 0 as "no limit" for the first connect
        "connect_timeout": 5,
        "name": "callout-sessions-cli",
    }
    if args.creds:
        options["user_credentials"] = str(args.creds)
    if args.login:
        options["user"] = args.login
        if args.password_file:
            options["password"] = read_secret(args.password_file, "NATS password")
    return options


async def gather(
    options: dict[str, Any], subject: str, body: dict[str, Any], wait: float
) -> list[dict[str, Any]]:
    """Every replica's answer to one request, as they arrive within ``wait`` seconds."""

    async def quiet(error: Exception) -> None:  # the failure is reported once, below
        del error

    nc = await asyncio.wait_for(nats.connect(**options, error_cb=quiet), timeout=10)
    answers: list[dict[str, Any]] = []
    try:
        inbox = nc.new_inbox()
        subscription = await nc.subscribe(inbox, max_msgs=MAX_REPLIES)
        await nc.publish(subject, json.dumps(body).encode(), reply=inbox)
        deadline = time.monotonic() + wait
        while len(answers) < MAX_REPLIES and (left := deadline - time.monotonic()) > 0:
            try:
                msg = await subscription.next_msg(timeout=left)
            except nats.errors.TimeoutError:
                break
            if not msg.data:  # the server's "no responders" status: nobody listens there
                break
            try:
                answers.append(json.loads(msg.data))
            except json.JSONDecodeError:
                answers.append({"error": "an answer that is not JSON"})
    finally:
        await nc.close()
    return answers


def _time(value: int) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_list(answers: list[dict[str, Any]], *, as_json: bool) -> None:
    # with shared state every replica lists every session: each once, by where it lives
    unique = {(s["server_id"], s["client_id"]): s for a in answers for s in a.get("sessions", [])}
    sessions = sorted(unique.values(), key=lambda s: s["since"])
    for s in sessions:
        if as_json:
            print(json.dumps(s, sort_keys=True))
            continue
        state = "connected" if s["connected"] else "pending"
        print(
            f"{s['principal']}\t{s['backend']}\t{s['account']}\t{s['server_name']}#{s['client_id']}"
            f"\t{s['client_host']}\t{_time(s['since'])}\t{_time(s['until'])}\t{state}"
        )
    if not as_json:
        print(f"{len(sessions)} session(s) from {len(answers)} replica(s)", file=sys.stderr)


def _kicks(answers: list[dict[str, Any]]) -> tuple[int, int]:
    """(kicked, failed): a session several replicas kicked (shared state) counts once, and
    a failure counts only where no replica kicked it."""
    if not all(isinstance(a.get("kicked_keys"), list) for a in answers):
        return sum(a.get("kicked", 0) for a in answers), sum(a.get("failed", 0) for a in answers)
    kicked = {key for a in answers for key in a["kicked_keys"]}
    failed = {key for a in answers for key in a.get("failed_keys", [])} - kicked
    return len(kicked), len(failed)


def sessions_command(args: argparse.Namespace) -> int:
    try:
        body = _request(args)
        wait = parse_duration(args.wait)
    except ValueError as error:
        print(f"callout sessions {args.verb}: {error}", file=sys.stderr)
        return EXIT_USAGE
    subject = f"{args.subject}.{args.verb}"
    try:
        answers = asyncio.run(gather(_options(args), subject, body, wait))
    except (OSError, TimeoutError, nats.errors.Error) as error:
        print(f"callout sessions: cannot reach {args.server}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if not answers:
        print(
            f"callout sessions: no replica answered on {subject} within {args.wait}"
            " (sessions not enabled, or no permission to publish there)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    errors = [a["error"] for a in answers if "error" in a]
    if errors:
        print(f"callout sessions {args.verb}: {errors[0]}", file=sys.stderr)
        return EXIT_USAGE
    if args.verb == "list":
        _print_list(answers, as_json=args.json)
        return 0
    kicked, failed = _kicks(answers)
    done = "revoked; " if args.verb == "revoke" else ""
    print(f"{done}{kicked} session(s) kicked, {failed} failed, {len(answers)} replica(s)")
    return EXIT_FAILURE if failed else 0
