"""Probes, metrics and `$SRV` discovery of a running service, against a real nats-server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from callout.backends.base import Backend
from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.devserver.processes import free_port
from callout.service.app import App
from tests.integration.conftest import ENVIRONMENTS
from tests.integration.environments import Environment, connect
from tests.integration.httpget import http_get
from tests.integration.rawclient import raw_connect
from tests.integration.test_concurrency import SlowBackend
from tests.integration.users import PASSWORDS

pytestmark = [
    pytest.mark.integration,
    # Environment-independent behaviour: one environment is enough.
    pytest.mark.parametrize("deployment", [ENVIRONMENTS[1]], indirect=True, ids=["accounts"]),
]


def _http() -> dict[str, Any]:
    return {"enabled": True, "host": "127.0.0.1", "port": free_port()}


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with exactly ``labels`` (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and item.labels == labels:
                return float(item.value)
    return 0.0


async def _metrics(app: App) -> str:
    assert app.http is not None
    status, body = await http_get(app.http.port, "/metrics")
    assert status == 200
    return body


async def test_livez_answers_while_nats_is_unreachable_and_readyz_says_why(
    deployment: Environment,
) -> None:
    """A NATS outage must not restart the pod (livez), but must take it out of service."""
    closed = free_port()
    app = App(deployment.settings(http=_http(), nats={"servers": [f"nats://127.0.0.1:{closed}"]}))
    starting = asyncio.create_task(app.start())
    try:
        for _ in range(100):
            if app.http is not None and app.http.listening:
                break
            await asyncio.sleep(0.02)
        assert app.http is not None
        assert await http_get(app.http.port, "/livez") == (200, "ok\n")
        status, body = await http_get(app.http.port, "/readyz")
        assert status == 503
        checks = json.loads(body)["checks"]
        assert checks["nats_connected"] is False
        assert checks["policy_loaded"] is True
    finally:
        app.request_stop()
        await starting
        await app.stop()


async def test_readyz_is_200_when_serving_and_503_from_the_start_of_shutdown(
    deployment: Environment,
) -> None:
    """The kubelet must stop routing to a draining instance before its requests finish."""

    def slow(verifier: PasswordVerifier) -> Sequence[Backend]:
        return [SlowBackend(StaticBackend(verifier), 0.8)]

    app = App(deployment.settings(http=_http()), backends=slow)
    await app.start()
    assert app.http is not None
    port = app.http.port
    status, body = await http_get(port, "/readyz")
    assert status == 200, body
    assert json.loads(body) == {
        "ready": True,
        "checks": {
            "keys_loaded": True,
            "nats_connected": True,
            "not_shutting_down": True,
            "policy_loaded": True,
            "subscribed": True,
        },
        "policy": {"source": "files", "digest": app.current_runtime().policy.digest},
    }
    login = asyncio.create_task(raw_connect(deployment.server.port, {"user": "x", "pass": "y"}))
    await asyncio.sleep(0.3)
    stopping = asyncio.create_task(app.stop())
    await asyncio.sleep(0.1)
    status, body = await http_get(port, "/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["not_shutting_down"] is False
    await stopping
    await login


async def test_metrics_count_known_traffic_without_user_names(deployment: Environment) -> None:
    """Dashboards and alerts read these numbers; user names must never become labels."""
    app = App(deployment.settings(http=_http()))
    await app.start()
    try:
        for _ in range(2):
            nc = await connect(deployment.url, user="alice", password=PASSWORDS["alice"])
            await nc.close()
        await raw_connect(deployment.server.port, {"user": "alice", "pass": "wrong"})
        await raw_connect(deployment.server.port, {"user": "mallory", "pass": "whatever"})
        text = await _metrics(app)
    finally:
        await app.stop()
    requests = "callout_auth_requests_total"
    assert sample(text, requests, outcome="allow", reason="allowed", backend="static") == 2
    assert sample(text, requests, outcome="deny", reason="bad_credentials", backend="static") == 1
    assert sample(text, requests, outcome="deny", reason="unknown_user", backend="static") == 1
    histogram = "callout_auth_request_duration_seconds"
    assert sample(text, f"{histogram}_count", outcome="allow") == 2
    assert sample(text, f"{histogram}_count", outcome="deny") == 2
    assert sample(text, f"{histogram}_bucket", outcome="allow", le="2.0") == 2
    backend = "callout_backend_request_duration_seconds_count"
    assert sample(text, backend, backend="static", operation="authenticate") == 4
    assert sample(text, "callout_nats_connected") == 1
    assert sample(text, "callout_inflight_requests") == 0
    users = len(app.current_runtime().policy.users)
    assert sample(text, "callout_policy_entries", kind="users") == users > 0
    assert sample(text, "callout_policy_last_reload_success_timestamp_seconds") > 0
    assert "callout_build_info{" in text
    assert "process_cpu_seconds_total" in text
    assert "alice" not in text
    assert "mallory" not in text
    assert "127.0.0.1" not in text


async def test_unknown_paths_are_404_and_head_has_no_body(deployment: Environment) -> None:
    """Only three routes exist; anything else is an honest 404, not the metrics page."""
    app = App(deployment.settings(http=_http()))
    await app.start()
    try:
        assert app.http is not None
        status, _ = await http_get(app.http.port, "/")
        assert status == 404
        assert await http_get(app.http.port, "/livez", method="HEAD") == (200, "")
        status, _ = await http_get(app.http.port, "/metrics", method="POST")
        assert status == 405
    finally:
        await app.stop()


async def test_an_occupied_http_port_is_a_configuration_error(deployment: Environment) -> None:
    """Two instances on one port must fail loudly at start, not run without probes."""
    http = _http()
    first = App(deployment.settings(http=http))
    await first.start()
    try:
        second = App(deployment.settings(http=http))
        with pytest.raises(Exception, match="cannot listen"):
            await second.start()
        await second.stop()
    finally:
        await first.stop()


async def test_srv_ping_info_and_stats_describe_the_service(deployment: Environment) -> None:
    """`nats micro ls/stats` work as for callout.go, without touching the request path."""
    app = App(deployment.settings())
    await app.start()
    try:
        nc = await connect(deployment.url, user="alice", password=PASSWORDS["alice"])
        await nc.close()
        await raw_connect(deployment.server.port, {"user": "alice", "pass": "wrong"})
        auth = await connect(
            deployment.url,
            **deployment.service_options(),
        )
        try:
            ping = json.loads((await auth.request("$SRV.PING", b"", timeout=2)).data)
            name = ping["name"]
            info = json.loads((await auth.request(f"$SRV.INFO.{name}", b"", timeout=2)).data)
            subject = f"$SRV.STATS.{name}.{ping['id']}"
            stats = json.loads((await auth.request(subject, b"", timeout=2)).data)
        finally:
            await auth.close()
    finally:
        await app.stop()
    assert ping["type"] == "io.nats.micro.v1.ping_response"
    assert name == "nats-auth-callout"
    assert info["type"] == "io.nats.micro.v1.info_response"
    assert info["endpoints"][0]["subject"] == "$SYS.REQ.USER.AUTH"
    assert info["endpoints"][0]["queue_group"] == "auth-callout"
    assert stats["type"] == "io.nats.micro.v1.stats_response"
    endpoint = stats["endpoints"][0]
    assert endpoint["num_requests"] == 2
    assert endpoint["num_errors"] == 0
    assert endpoint["processing_time"] > 0
    assert endpoint["data"]["decisions"] == {"allowed": 1, "bad_credentials": 1}
