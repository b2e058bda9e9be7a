"""Series that alerts read exist at 0 from start-up; the policy and creds gauges."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from callout.decision import DropReason, Lane, Reason
from callout.observability.metrics import Metrics, request_series
from callout.protocol.creds import format_creds
from callout.protocol.jwt import encode
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.admission import Admission, LaneLimits
from callout.service.connector import connect_options, creds_expiry
from callout.settings import NatsSettings


def _samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.render().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return _samples(metrics).get((name, frozenset(labels.items())))


def test_reload_failures_exist_at_zero_before_the_first_failure() -> None:
    """`increase(...{result="failure"}[10m]) > 0` must see the first failure (0 -> 1)."""
    metrics = Metrics()
    assert _value(metrics, "callout_policy_reloads_total", result="failure") == 0.0
    assert _value(metrics, "callout_policy_reloads_total", result="success") == 0.0
    metrics.reload(success=False)
    assert _value(metrics, "callout_policy_reloads_total", result="failure") == 1.0


def test_every_drop_reason_has_a_series_at_zero() -> None:
    """Drop alerts (overload, throttled) need their series before the first drop."""
    metrics = Metrics()
    for reason in DropReason:
        assert _value(metrics, "callout_requests_dropped_total", reason=reason.value) == 0.0


def test_every_reason_has_a_request_series_at_zero_under_its_outcome() -> None:
    """Derived from the enums: a new Reason or DropReason gets its series automatically."""
    metrics = Metrics()
    pairs = {reason: kind for kind, reason in request_series()}
    assert set(pairs) == {r.value for r in Reason} | {r.value for r in DropReason}
    assert pairs["bad_credentials"] == "deny"
    assert pairs["backend_unavailable"] == "error"
    assert pairs["throttled"] == "dropped"
    for reason, kind in pairs.items():
        labels = {"outcome": kind, "reason": reason, "backend": "none"}
        assert _value(metrics, "callout_auth_requests_total", **labels) == 0.0


def test_latency_histogram_has_zero_series_per_outcome() -> None:
    metrics = Metrics()
    for kind in ("allow", "deny", "error", "dropped"):
        assert _value(metrics, "callout_auth_request_duration_seconds_count", outcome=kind) == 0.0


def test_backend_error_series_exist_for_configured_backends() -> None:
    metrics = Metrics()
    metrics.prime_backends(["static", "ldap"])
    for backend in ("static", "ldap"):
        for error in ("unavailable", "timeout", "error"):
            labels = {"backend": backend, "error": error}
            assert _value(metrics, "callout_backend_errors_total", **labels) == 0.0


def test_policy_info_names_only_the_active_digest_and_entries_count_tokens() -> None:
    """Which policy each replica runs; a reload replaces the series, it does not add one."""
    metrics = Metrics()
    metrics.policy_loaded(users=2, groups=1, tokens=3, digest="a" * 64)
    metrics.policy_loaded(users=2, groups=1, tokens=4, digest="b" * 64)
    samples = _samples(metrics)
    digests = [dict(labels)["digest"] for name, labels in samples if name == "callout_policy_info"]
    assert digests == ["b" * 64]
    assert _value(metrics, "callout_policy_entries", kind="tokens") == 4.0


def _creds_file(tmp_path: Path, exp: int | None) -> Path:
    account = KeyPair.generate(KeyRole.ACCOUNT)
    user = KeyPair.generate(KeyRole.USER)
    claims: dict[str, object] = {"sub": user.public_key, "nats": {"type": "user", "version": 2}}
    if exp is not None:
        claims["exp"] = exp
    path = tmp_path / "svc.creds"
    path.write_text(format_creds(encode(claims, account, iat=int(time.time())), user.seed))
    path.chmod(0o600)
    return path


def test_creds_expiry_gauge_reads_the_creds_files_exp(tmp_path: Path) -> None:
    """An alert warns before the service's own login stops working."""
    exp = int(time.time()) + 3600
    options = connect_options(NatsSettings(creds_file=_creds_file(tmp_path, exp)))
    metrics = Metrics()
    metrics.watch_creds(creds_expiry(options))
    assert _value(metrics, "callout_nats_creds_expiry_timestamp_seconds") == float(exp)


def test_creds_expiry_gauge_is_zero_without_expiry_or_creds(tmp_path: Path) -> None:
    never = connect_options(NatsSettings(creds_file=_creds_file(tmp_path, None)))
    for options in (never, connect_options(NatsSettings())):
        metrics = Metrics()
        metrics.watch_creds(creds_expiry(options))
        assert _value(metrics, "callout_nats_creds_expiry_timestamp_seconds") == 0.0


def test_every_lane_has_its_series_at_zero_before_the_worker_exists() -> None:
    metrics = Metrics()
    for lane in Lane:
        for name in ("callout_lane_busy_requests", "callout_lane_waiting_requests"):
            assert _value(metrics, name, lane=lane.value) == 0.0
        assert _value(metrics, "callout_lane_refused_total", lane=lane.value) == 0.0


async def test_the_lane_series_show_what_is_busy_waiting_and_refused() -> None:
    """One expensive slot: a request in it, one waiting for it, one refused (no time left)."""
    admission = Admission({lane: LaneLimits(slots=1, queue=4) for lane in Lane})
    metrics = Metrics()
    metrics.watch_lanes(lambda: admission.lanes)
    release = asyncio.Event()

    async def work() -> bool:
        await release.wait()
        return True

    deadline = asyncio.get_running_loop().time() + 60
    running = [asyncio.create_task(admission.run(Lane.EXPENSIVE, deadline, work)) for _ in (1, 2)]
    await asyncio.sleep(0)
    assert await admission.run(Lane.EXPENSIVE, deadline - 60, work) is None  # already too late
    assert _value(metrics, "callout_lane_busy_requests", lane="expensive") == 1.0
    assert _value(metrics, "callout_lane_waiting_requests", lane="expensive") == 1.0
    assert _value(metrics, "callout_lane_refused_total", lane="expensive") == 1.0
    assert _value(metrics, "callout_lane_busy_requests", lane="cheap") == 0.0
    release.set()
    assert await asyncio.gather(*running) == [True, True]
    assert _value(metrics, "callout_lane_busy_requests", lane="expensive") == 0.0
