"""The one HTTP port: ``/livez``, ``/readyz`` and ``/metrics`` on `asyncio.start_server`.

``prometheus_client.start_http_server`` answers every path with the metrics, so it cannot
serve probes (docs/operations.md#probes); this is a minimal HTTP/1.1 GET responder instead, with no
framework and no thread. ``/livez`` checks nothing but that the loop serves HTTP (a NATS
outage must not restart the pod); ``/readyz`` is 200 only when every readiness check holds,
else 503, with the checks as JSON and the ``details`` (facts such as the policy revision,
which never fail readiness) next to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping

import structlog

from callout.errors import ConfigError

log = structlog.get_logger("callout.http")

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[503] = "Service Unavailable"
_READ_TIMEOUT = 5.0
_MAX_HEADER_BYTES = 8192
_JSON = "application/json"

Checks = Callable[[], Mapping[str, bool]]
Details = Callable[[], Mapping[str, object]]


class ProbeServer:
    """Serves the probes and metrics until `stop`; ``port`` is the bound port (0 = any)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        readiness: Checks,
        metrics: Callable[[], bytes],
        metrics_content_type: str,
        details: Details | None = None,
    ) -> None:
        """``details`` are facts shown in the `/readyz` body beside the checks; they decide
        nothing (the policy's source and revision, whether the replica is on shared state)."""
        self.host = host
        self.port = port
        self.readiness = readiness
        self.details = details
        self.metrics = metrics
        self.metrics_content_type = metrics_content_type
        self._server: asyncio.Server | None = None

    @property
    def listening(self) -> bool:
        """Between `start` and `stop`."""
        return self._server is not None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as error:
            raise ConfigError(
                f"http: cannot listen on {self.host}:{self.port}: {error.strerror}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("http_listening", url=self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        except ConnectionError:
            return
        status, content_type, body = self._route(head[:_MAX_HEADER_BYTES])
        reason = _REASONS.get(status, "")
        header = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n"
        )
        if head.startswith(b"HEAD "):
            body = b""
        try:
            writer.write(header.encode("ascii") + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _route(self, head: bytes) -> tuple[int, str, bytes]:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != len(("GET", "/path", "HTTP/1.1")):
            return 400, "text/plain", b"bad request\n"
        method, target, _ = parts
        path = target.split("?", 1)[0]
        if path not in ("/livez", "/readyz", "/metrics"):
            return 404, "text/plain", b"not found\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == "/livez":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            checks = dict(self.readiness())
            ready = all(checks.values())
            facts = dict(self.details()) if self.details is not None else {}
            answer = {**facts, "ready": ready, "checks": checks}
            body = json.dumps(answer, sort_keys=True).encode() + b"\n"
            return (200 if ready else 503), _JSON, body
        return 200, self.metrics_content_type, self.metrics()
