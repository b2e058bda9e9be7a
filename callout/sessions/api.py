"""`<api_subject>.list|kick|revoke`: the operator commands, as a NATS micro service.

Every replica answers (each has a queue group of its own): a replica knows the grants *it*
issued, so `callout sessions` gathers the answers of all of them. With shared state, each
replica also lists and kicks the other replicas' sessions from the sessions bucket (so one
replica is enough, and a stopped replica's sessions stay reachable); `callout sessions`
counts a session answered by several replicas once. Who may call is decided by
NATS permissions on the subjects (README "Live sessions"). Bodies are JSON; a bad request
gets ``{"error": ...}`` and the micro error headers.
"""

from __future__ import annotations

import json
import time
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service, ServiceConfig
from nats.nuid import NUID

from callout import __version__
from callout.decision import BackendName
from callout.sessions.denylist import KINDS, DenyEntry, DenyListFullError
from callout.sessions.registry import Session
from callout.sessions.service import SessionService
from callout.sessions.shared import SharedSession, others
from callout.state.sessions import SharedSessions

SERVICE_NAME = "callout-sessions"
MAX_REVOKE_SECONDS = 366 * 86400


class BadRequestError(Exception):
    """A request the operator must fix."""


def _body(data: bytes) -> dict[str, Any]:
    if not data:
        return {}
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequestError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    return body


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise BadRequestError(f"{key} must be a non-empty string")
    return value


class SessionApi:
    """Answers list, kick and revoke for one replica."""

    def __init__(self, sessions: SessionService, subject: str) -> None:
        self.sessions = sessions
        self.subject = subject
        self.instance = NUID().next().decode()
        self._service: Service | None = None
        self.shared: SharedSessions | None = None  # the sessions bucket, with shared state

    async def start(self, nc: NatsClient) -> None:
        config = ServiceConfig(
            name=SERVICE_NAME,
            version=__version__,
            description="live sessions of nats-auth-callout",
            queue_group=f"callout-sessions-{self.instance}",
        )
        service = await add_service(nc, config)
        for name, handler in (("list", self._list), ("kick", self._kick), ("revoke", self._revoke)):
            await service.add_endpoint(
                EndpointConfig(name=name, subject=f"{self.subject}.{name}", handler=handler)
            )
        self._service = service

    async def stop(self) -> None:
        if self._service is not None:
            await self._service.stop()
            self._service = None

    async def _answer(self, request: Request, work: Any) -> None:
        try:
            body = await work(_body(request.data))
        except (BadRequestError, DenyListFullError) as error:
            await request.respond_error(
                "400", str(error), data=json.dumps({"error": str(error)}).encode()
            )
            return
        await request.respond(json.dumps({"instance": self.instance, **body}).encode())

    def _selected(self, body: dict[str, Any]) -> list[Session | SharedSession]:
        user, token, group = _text(body, "user"), _text(body, "token"), _text(body, "group")
        account, backend = _text(body, "account"), _text(body, "backend")
        tracker = self.sessions.tracker
        tracker.sweep()
        found: list[Session | SharedSession] = list(
            tracker.registry.select(
                principal=user or token, account=account, backend=backend, group=group
            )
        )
        if self.shared is not None:
            found += [
                s
                for s in others(tracker.registry, self.shared, time.time())
                if (user or token) in (None, s.principal)
                and account in (None, s.account)
                and backend in (None, s.backend)
                and (group is None or group in s.groups)
            ]
        if token is not None:
            found = [s for s in found if s.backend == BackendName.TOKEN]
        return found

    async def _kick_all(self, sessions: list[Session | SharedSession], why: str) -> Any:
        kicked, failed = await self.sessions.kick_all(sessions, why=why)
        return {
            "kicked": len(kicked),
            "failed": len(failed),
            "kicked_keys": kicked,
            "failed_keys": failed,
        }

    async def _list(self, request: Request) -> None:
        async def work(body: dict[str, Any]) -> dict[str, Any]:
            return {"sessions": [s.summary() for s in self._selected(body)]}

        await self._answer(request, work)

    async def _kick(self, request: Request) -> None:
        async def work(body: dict[str, Any]) -> dict[str, Any]:
            if not any(body.get(key) for key in ("user", "token", "group")):
                raise BadRequestError("kick needs user, token or group")
            answer: dict[str, Any] = await self._kick_all(self._selected(body), "operator")
            return answer

        await self._answer(request, work)

    async def _revoke(self, request: Request) -> None:
        async def work(body: dict[str, Any]) -> dict[str, Any]:
            kind, name, until = body.get("kind"), _text(body, "name"), body.get("until")
            now = time.time()
            if kind not in KINDS or name is None:
                raise BadRequestError("revoke needs kind (user, token or group) and name")
            if not isinstance(until, int) or not now < until <= now + MAX_REVOKE_SECONDS:
                raise BadRequestError("until must be a unix time in the next 366 days")
            note = body.get("note", "")
            entry = DenyEntry(kind, name, until, note if isinstance(note, str) else "")
            self.sessions.tracker.deny_list.add(entry, now)
            selected = self._selected({"user" if kind == "user" else kind: name})
            kicks = await self._kick_all(selected, "revoked")
            return {"revoked": {"kind": kind, "name": name, "until": until}, **kicks}

        await self._answer(request, work)
