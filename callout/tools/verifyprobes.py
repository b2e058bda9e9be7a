"""`callout verify`'s looks at the server side: the running service instances (micro PING)
and the audit stream. Each returns one `Check`; every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from callout.service.micro import SERVICE_NAME
from callout.settings import Settings
from callout.tools.checklist import Check, Status

MAX_ANSWERS = 32
PING_WAIT = 0.5  # seconds to collect $SRV.PING answers


async def service_running(nc: Any, settings: Settings) -> Check:
    """Instances of the service answering micro PING, and the subject they serve."""
    inbox = nc.new_inbox()
    answers: list[dict[str, Any]] = []

    async def collect(msg: Any) -> None:
        with contextlib.suppress(ValueError):
            body = json.loads(msg.data)
            if isinstance(body, dict) and len(answers) < MAX_ANSWERS:
                answers.append(body)

    subscription = await nc.subscribe(inbox, cb=collect)
    await nc.publish(f"$SRV.PING.{SERVICE_NAME}", b"", reply=inbox)
    await nc.flush()
    await asyncio.sleep(PING_WAIT)
    await subscription.unsubscribe()
    if not answers:
        return Check(
            "callout service",
            Status.FAIL,
            f"no instance of {SERVICE_NAME} answered $SRV.PING in this account",
            "start `callout serve` with these settings (it must be connected and subscribed)",
        )
    subjects = {str((a.get("metadata") or {}).get("subject", "")) for a in answers}
    if subjects != {settings.nats.subject}:
        return Check(
            "callout service",
            Status.FAIL,
            f"{len(answers)} instance(s) running, subscribed on {sorted(subjects)}",
            f"the server publishes requests on {settings.nats.subject} (nats.subject)",
        )
    return Check(
        "callout service",
        Status.OK,
        f"{len(answers)} instance(s) running, subscribed on {settings.nats.subject}",
    )


async def audit_stream(nc: Any, settings: Settings) -> tuple[Check, int | None] | None:
    """The stream that captures the audit subject, and its last sequence (None: no stream)."""
    audit = settings.audit.jetstream
    if not audit.enabled:
        return None
    js = nc.jetstream()
    try:
        name = await js.find_stream_name_by_subject(audit.subject)
        info = await js.stream_info(name)
    except Exception as error:  # noqa: BLE001 - no stream, no JetStream, no permission
        return (
            Check(
                "audit stream",
                Status.FAIL,
                f"no stream captures {audit.subject} ({type(error).__name__})",
                f"create a stream with subject {audit.subject} in the callout account"
                f" (e.g. nats stream add CALLOUT_AUDIT --subjects {audit.subject})",
            ),
            None,
        )
    if audit.stream is not None and name != audit.stream:
        return (
            Check(
                "audit stream",
                Status.FAIL,
                f"{audit.subject} is captured by stream {name}, not {audit.stream}",
                "set audit.jetstream.stream to the stream's name, or move the subject",
            ),
            None,
        )
    detail = f"stream {name} captures {audit.subject}"
    return Check("audit stream", Status.OK, detail), int(info.state.last_seq)


async def audit_captured(nc: Any, settings: Settings, before: int, result: str) -> Check:
    """The test login's audit event reached the stream (polled for up to ~2 s)."""
    audit = settings.audit.jetstream
    js = nc.jetstream()
    for _ in range(20):
        with contextlib.suppress(Exception):
            name = await js.find_stream_name_by_subject(audit.subject)
            info = await js.stream_info(name)
            if int(info.state.last_seq) > before:
                return Check("audit event", Status.OK, f"the test login's event is in {name}")
        await asyncio.sleep(0.1)
    return Check(
        "audit event",
        Status.FAIL,
        f"no audit event reached the stream after the test login ({result})",
        "check the service's log for audit_publish_failed and the stream's limits",
    )
