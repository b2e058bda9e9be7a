"""What the deploy and image tests share with a service under test: a login that does not
retry, its probe answers, and its JSON log lines."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from nats.aio.client import Client


async def _quiet(error: Exception) -> None:
    """nats-py logs every refused login at ERROR level; the tests assert on it instead."""


async def connect(url: str, **credentials: Any) -> Client:
    """A client that does not retry, and that closes its socket when the login is refused."""
    client = Client()
    try:
        await client.connect(
            url,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=5,
            error_cb=_quiet,
            **credentials,
        )
    except BaseException:
        await client.close()
        raise
    return client


def json_events(text: str) -> list[dict[str, Any]]:
    """The JSON objects among the log lines (a line still being written is skipped)."""
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def http_status(port: int, path: str) -> int | str:
    """GET ``path`` on 127.0.0.1: the status code, or why there was none."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as reply:
            status: int = reply.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        return repr(error)
