"""`callout verify`'s reading of one test login: the request copy the server sent, the
server's reason for a refusal, and the policy's own decision of the same request. Pure but for
the local decision, which runs the configured backends."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from callout.backends.passwords import PasswordVerifier
from callout.decision import Decision
from callout.errors import RequestRejectedError
from callout.protocol.claims import AuthRequest
from callout.protocol.nkeys import CurveKeyPair
from callout.protocol.xkey import HEADER as XKEY_HEADER
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import OpenedRequest, Pipeline, open_request
from callout.service.runtime import Runtime
from callout.service.versionguard import VersionGuard
from callout.service.wiring import build_backends
from callout.settings import Settings
from callout.tools.checklist import Check, Status, server_reason, xkey_check

LOCAL_BUDGET = 10  # seconds the local decision of the captured request may take
READ_LEEWAY = 3600.0  # seconds past its exp a copy is still read


MAX_KEPT = 32  # request copies kept while the test login runs
SAMPLES = 8  # other logins' requests kept (to judge the xkey when ours cannot be read)
MAX_ADVISORY_BYTES = 64 * 1024


@dataclass
class Capture:
    """What the plain subscriptions see during the test login: a few request copies (ours
    always, when it can be read, else the first few) and the server's reasons for refusing
    our login (matched by the test client's unique name); bounded however busy the server."""

    marker: str
    runtime: Runtime
    requests: list[Any] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    async def on_request(self, msg: Any) -> None:
        if len(self.requests) >= MAX_KEPT:
            return
        if len(self.requests) < SAMPLES or _read(msg, self.runtime, self.marker)[0]:
            self.requests.append(msg)

    async def on_advisory(self, msg: Any) -> None:
        if len(self.reasons) >= MAX_KEPT or len(msg.data) > MAX_ADVISORY_BYTES:
            return
        try:
            body = json.loads(msg.data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return
        client = body.get("client") if isinstance(body, dict) else None
        if isinstance(client, dict) and client.get("name") == self.marker:
            reason = body.get("reason", "")
            self.reasons.append(reason[:300] if isinstance(reason, str) else "")


@dataclass(frozen=True)
class Outcome:
    result: str  # allowed | refused | error
    detail: str
    marker: str


def issuer_key(runtime: Runtime) -> str:
    """The key whose signatures the server must accept (config mode: the issuer)."""
    if isinstance(runtime.issuer, ConfigModeIssuer):
        return runtime.issuer.key.public_key
    return "the accounts' signing keys (operator mode)"


async def end_to_end(
    settings: Settings,
    runtime: Runtime,
    capture: Capture,
    outcome: Outcome,
    expect: str | None,
) -> list[Check]:
    checks: list[Check] = []
    reason = next((r for r in capture.reasons if r), "")
    # our login's advisory without a reason: the server's wait for an answer ran out
    timed_out = outcome.result == "refused" and bool(capture.reasons) and not reason
    if not capture.requests:
        checks.append(
            Check(
                "request received",
                Status.FAIL,
                f"the server sent no request on {settings.nats.subject} to this account",
                "the service's user is not in the auth_callout account, or the test user is"
                " an auth_users member or a user the server knows itself",
            )
        )
        checks.append(_login_check(outcome, expect, None, reason))
        return checks
    opened, sealed, readable = _open(capture.requests, runtime, outcome.marker)
    checks.append(Check("request received", Status.OK, f"on {settings.nats.subject}"))
    configured = runtime.xkey.public_key if runtime.xkey is not None else None
    checks.append(xkey_check(configured=configured, sealed=sealed, opened=readable))
    local = None
    if opened is not None:
        checks.append(_version_check(settings, opened.request))
        local = await _decide_locally(settings, runtime, opened)
    checks.append(_answered_check(outcome, reason, bool(timed_out), settings))
    checks.append(_issuer_check(outcome, reason, runtime))
    checks.append(_login_check(outcome, expect, local, reason))
    return checks


def _read(msg: Any, runtime: Runtime, marker: str) -> tuple[bool, OpenedRequest | None, bool, bool]:
    """(is our login's, opened or None, came sealed, our xkey opened it) for one copy."""
    headers = {name.lower(): value for name, value in (msg.headers or {}).items()}
    header = headers.get(XKEY_HEADER.lower())
    sealed = header is not None or not msg.data.startswith(b"eyJ")
    own: CurveKeyPair | None = runtime.xkey if sealed else None
    try:
        # verify reads copies after the fact: their freshness does not matter here
        request, xkey = open_request(msg.data, header, own, now=time.time(), leeway=READ_LEEWAY)
    except RequestRejectedError:
        return False, None, sealed, False
    ours = request.client.name == marker
    return ours, OpenedRequest(request, xkey, runtime), sealed, sealed and own is not None


def _open(
    messages: list[Any], runtime: Runtime, marker: str
) -> tuple[OpenedRequest | None, bool, bool]:
    """Our login's request (else the first copy): (opened or None, sealed, our xkey opened it)."""
    first: tuple[OpenedRequest | None, bool, bool] | None = None
    for msg in messages:
        ours, opened, sealed, readable = _read(msg, runtime, marker)
        if ours:
            return opened, sealed, readable
        first = first or (opened, sealed, readable)
    return first or (None, False, False)


def _version_check(settings: Settings, request: AuthRequest) -> Check:
    verdict = VersionGuard(settings.server_versions).verdict(request.server.version)
    shown = request.server.version or "(none)"
    if verdict.refused:
        return Check(
            "server version",
            Status.FAIL,
            f"nats-server {shown}: the service refuses its logins ({verdict.detail()})",
            "upgrade the server, or relax server_versions",
        )
    if verdict.advisories:
        return Check(
            "server version",
            Status.WARN,
            verdict.detail(),
            "upgrade; `callout policy check --server-version` lists the rules at risk",
        )
    return Check("server version", Status.OK, f"nats-server {shown}, no open advisory")


async def _decide_locally(
    settings: Settings, runtime: Runtime, opened: OpenedRequest
) -> Decision | None:
    """The policy's decision of the captured request (None if deciding failed: the checks
    from the server still stand). The server has stopped waiting by now: decide as if the
    request had just arrived."""
    try:
        return await _decide(settings, runtime, opened)
    except Exception:  # noqa: BLE001 - a fault here must not hide the server's answer
        return None


async def _decide(settings: Settings, runtime: Runtime, opened: OpenedRequest) -> Decision:
    now = time.time()
    fresh = replace(opened.request, expires=int(now) + LOCAL_BUDGET)
    verifier = PasswordVerifier(max_workers=1)
    try:
        pipeline = Pipeline(
            runtime=lambda: runtime,
            backends=build_backends(settings, verifier),
            versions=VersionGuard(settings.server_versions),
        )
        return await pipeline.decide(replace(opened, request=fresh), now=now)
    finally:
        verifier.close()


def _answered_check(outcome: Outcome, reason: str, timed_out: bool, settings: Settings) -> Check:
    if timed_out:
        return Check(
            "service answered",
            Status.FAIL,
            "the server gave up waiting for an answer (timeout)",
            f"is `callout serve` running, subscribed on {settings.nats.subject} in queue group"
            f" {settings.nats.queue_group}, with the same keys?",
        )
    if outcome.result == "allowed" or "service returned an error" in reason.lower():
        return Check("service answered", Status.OK, "the running service answered the login")
    if reason:
        return Check("service answered", Status.OK, f"answered; the server said: {reason}")
    return Check("service answered", Status.SKIP, "no answer to judge")


def _issuer_check(outcome: Outcome, reason: str, runtime: Runtime) -> Check:
    issuer = issuer_key(runtime)
    if outcome.result == "allowed":
        return Check("issuer", Status.OK, f"the server accepted a user JWT signed by {issuer}")
    operator = runtime.issuer is not None and not isinstance(runtime.issuer, ConfigModeIssuer)
    found = server_reason(reason, issuer=issuer, operator=operator) if reason else None
    if found is not None:
        area, hint = found
        return Check(area, Status.FAIL, f"the server refused the answer: {reason}", hint)
    return Check("issuer", Status.SKIP, "not checked: only an allowed login proves the issuer key")


def _login_check(
    outcome: Outcome, expect: str | None, local: Decision | None, reason: str
) -> Check:
    got = "allow" if outcome.result == "allowed" else "deny"
    decided = ""
    if local is not None:
        decided = f"; the policy decides {local.reason.value}"
        if local.grant is not None:
            grant = local.grant
            decided += f" into {grant.account} with {json.dumps(grant.permissions.to_nats())}"
    server = f"; the server said: {reason}" if reason else ""
    detail = f"{outcome.detail}{decided}{server}"
    if outcome.result == "error":
        return Check("test login", Status.FAIL, detail, "the test client could not connect")
    if expect is None or expect == got:
        return Check("test login", Status.OK, f"{got}: {detail}")
    policy_agrees = local is not None and (local.grant is not None) == (expect == "allow")
    hint = (
        "the policy decides as expected: the FAIL items above say why the server did not"
        if policy_agrees
        else "compare the credential file with the policy (`callout policy explain`)"
    )
    return Check("test login", Status.FAIL, f"expected {expect}, got {got}: {detail}", hint)
