"""The composition root: every part of one service process, built from its settings.

`build` reads the files (policy, keys, the NATS password) and makes the parts, wired to each
other; nothing is started and no socket is opened. `callout.service.app.App` then runs the
built `Service`: startup → serve → shutdown. Anything that cannot work raises `ConfigError`
here, before any I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from callout.backends.base import Backend
from callout.backends.cache import decision_cache_of
from callout.backends.chain import BackendReport, BackendStats, report_chain
from callout.backends.passwords import PasswordVerifier
from callout.observability.audit import AuditLog
from callout.observability.auditstream import JetStreamAudit
from callout.observability.http import ProbeServer
from callout.observability.metrics import CONTENT_TYPE, Metrics
from callout.observability.observer import ServiceObserver
from callout.service.admission import expensive_limits
from callout.service.connector import connect_options, creds_expiry
from callout.service.micro import MicroResponder
from callout.service.pipeline import Pipeline
from callout.service.policyfeed import PolicyFeed
from callout.service.reloader import Reloader
from callout.service.sharing import share_decision_cache
from callout.service.throttle import Throttle
from callout.service.versionguard import VersionGuard
from callout.service.watcher import DirectoryWatcher
from callout.service.wiring import account_names, build_backends
from callout.service.worker import Worker
from callout.sessions.live import LiveSessions
from callout.settings import PolicySource, Settings
from callout.state.shared import SharedState, build_shared_state

log = structlog.get_logger("callout.app")

BackendFactory = Callable[[PasswordVerifier], Sequence[Backend]]


@dataclass(frozen=True, slots=True)
class Service:
    """The built parts; the optional ones exist only when their settings enable them."""

    settings: Settings
    metrics: Metrics
    reloader: Reloader
    connect_options: dict[str, Any]
    verifier: PasswordVerifier
    worker: Worker
    micro: MicroResponder
    http: ProbeServer | None
    watcher: DirectoryWatcher | None
    audit_stream: JetStreamAudit | None
    sessions: LiveSessions | None
    shared: SharedState | None
    policy_feed: PolicyFeed | None = None


def build(
    settings: Settings,
    *,
    metrics: Metrics,
    readiness: Callable[[], dict[str, bool]],
    backends: BackendFactory | None = None,
    settings_source: Callable[[], Settings] | None = None,
) -> Service:
    """Every part of the service. ``backends`` replaces the configured backend chain (tests
    use it at this port boundary); ``settings_source`` re-reads the settings on each reload."""
    feed = PolicyFeed(settings.policy.kv, metrics) if _from_kv(settings) else None
    reloader = Reloader(
        settings,
        metrics=metrics,
        source=settings_source,
        policy=feed.policy if feed is not None else None,
    )
    if feed is not None:
        feed.attach(reloader)
    options = connect_options(settings.nats)  # login files fail here, before any I/O
    metrics.watch_creds(creds_expiry(options))
    verifier = PasswordVerifier(max_workers=settings.service.password_workers)
    shared = build_shared_state(settings, metrics.registry) if settings.state.enabled else None
    chain = _backends(settings, metrics, verifier, backends, shared)
    metrics.prime_backends(backend.name for backend in chain)
    service = settings.service
    pipeline = Pipeline(
        runtime=reloader.current,
        backends=chain,
        deny_mode=service.deny,
        error_message=service.error_message,
        leeway=service.request_leeway,
        versions=VersionGuard(settings.server_versions, metrics=metrics),
    )
    audit_settings = settings.audit
    audit_stream = (
        JetStreamAudit(audit_settings.jetstream, metrics)
        if audit_settings.jetstream.enabled
        else None
    )
    audit = AuditLog(
        log=audit_settings.log, sink=audit_stream.offer if audit_stream is not None else None
    )
    sessions = _live_sessions(settings, metrics, audit) if settings.sessions.enabled else None
    if sessions is not None and shared is not None and shared.revocations is not None:
        sessions.share(shared.revocations, shared.sessions)
    if sessions is None:
        observer = ServiceObserver(metrics=metrics, audit=audit)
    else:  # one that also records the grants, and backends that refuse deny-listed identities
        pipeline.backends = tuple(sessions.backends(pipeline.backends))
        observer = sessions.observer()
        reloader.listeners.append(sessions.reloaded)
    worker = Worker(
        pipeline,
        subject=settings.nats.subject,
        queue=settings.nats.queue_group,
        max_concurrency=service.max_concurrency,
        max_pending=service.max_pending,
        observer=observer,
        throttle=_throttle(settings, shared),
        expensive=expensive_limits(settings, verifier.workers),
        confirm_budget=settings.state.confirm_budget if shared is not None else 0.0,
    )
    metrics.watch_inflight(lambda: worker.in_flight)
    metrics.watch_kdf(lambda: verifier.verifications)
    metrics.watch_lanes(lambda: worker.admission.lanes)
    micro = MicroResponder(
        subject=settings.nats.subject,
        queue=settings.nats.queue_group,
        stats=observer.stats,
        details=lambda: _details(metrics, reloader),
    )
    return Service(
        settings=settings,
        metrics=metrics,
        reloader=reloader,
        connect_options=options,
        verifier=verifier,
        worker=worker,
        micro=micro,
        http=_probes(
            settings, metrics, readiness, lambda: _readiness_details(reloader, feed, shared)
        ),
        watcher=_watcher(settings, reloader),
        audit_stream=audit_stream,
        sessions=sessions,
        policy_feed=feed,
        shared=shared,
    )


def _from_kv(settings: Settings) -> bool:
    return settings.policy.source is PolicySource.KV


def _readiness_details(
    reloader: Reloader, feed: PolicyFeed | None, shared: SharedState | None
) -> dict[str, Any]:
    """Facts the ``/readyz`` body shows beside the checks: the ``policy`` (where it comes
    from, its digest and revision) and, with shared state, whether this replica is on it."""
    details: dict[str, Any] = {
        "policy": feed.details()
        if feed is not None
        else {"source": "files", "digest": reloader.current().policy.digest}
    }
    if shared is not None:
        details["shared_state"] = shared.health.detail()
    return details


def _details(metrics: Metrics, reloader: Reloader) -> dict[str, Any]:
    """The micro STATS ``data``: requests by reason (decided, dropped), the policy digest."""
    outcomes = metrics.outcomes()
    return {
        "decisions": {r: int(n) for (kind, r), n in outcomes.items() if kind != "dropped"},
        "drops": {r: int(n) for (kind, r), n in outcomes.items() if kind == "dropped"},
        "policy_digest": reloader.current().policy.digest,
    }


def describe(service: Service) -> dict[str, Any]:
    """The ``service_starting`` log fields: mode, xkey, accounts, policy digest."""
    runtime = service.reloader.current()
    return {
        "mode": service.settings.mode.value,
        "xkey": runtime.xkey.public_key if runtime.xkey else None,
        "accounts": account_names(service.settings),
        "policy_digest": runtime.policy.digest,
    }


def _backends(
    settings: Settings,
    metrics: Metrics,
    verifier: PasswordVerifier,
    factory: BackendFactory | None,
    shared: SharedState | None,
) -> Sequence[Backend]:
    def reported(report: BackendReport) -> None:
        metrics.backend_call(report.backend, "authenticate", report.duration_s)
        if report.error:
            metrics.backend_error(report.backend, report.error)

    def cache_lookup(hit: bool) -> None:
        metrics.cache_lookup("decision", hit=hit)

    stats = BackendStats()
    stats.observers.append(reported)
    if factory is None:
        if shared is None:
            return build_backends(settings, verifier, cache_lookup, stats)
        chain = build_backends(settings, verifier, cache_lookup, stats, shared.cache_key)
        cache = decision_cache_of(chain)
        if cache is not None and shared.decisions is not None:
            share_decision_cache(cache, shared.decisions)
        return chain
    # backends given at the port boundary (tests) report the same way
    leeway = settings.service.request_leeway
    return report_chain(factory(verifier), stats, verifier, leeway=leeway)


def _throttle(settings: Settings, shared: SharedState | None) -> Throttle | None:
    throttle = settings.throttle
    if not throttle.enabled:
        return None
    return Throttle(
        window=throttle.window,
        max_per_principal=throttle.max_failures_per_principal,
        max_per_ip=throttle.max_failures_per_ip,
        max_per_principal_unfamiliar=throttle.max_failures_per_principal_unfamiliar,
        familiar_for=throttle.familiar_for,
        max_tracked=throttle.max_tracked,
        digest_key=shared.digest_key if shared is not None else None,
        shared=shared.counters if shared is not None else None,
    )


def _probes(
    settings: Settings,
    metrics: Metrics,
    readiness: Callable[[], dict[str, bool]],
    details: Callable[[], dict[str, Any]],
) -> ProbeServer | None:
    http = settings.http
    if not http.enabled:
        return None
    return ProbeServer(
        host=http.host,
        port=http.port,
        readiness=readiness,
        details=details,
        metrics=metrics.render,
        metrics_content_type=CONTENT_TYPE,
    )


def _watcher(settings: Settings, reloader: Reloader) -> DirectoryWatcher | None:
    reload = settings.reload
    if not reload.watch:
        return None
    return DirectoryWatcher(
        reloader.watched_directories(),
        lambda: reloader.reload_in_thread("watch"),
        relevant=reloader.relevant,
        debounce=reload.debounce,
        force_polling=reload.force_polling,
        poll_interval=reload.poll_interval,
    )


def _live_sessions(settings: Settings, metrics: Metrics, audit: AuditLog) -> LiveSessions:
    """The sessions feature; its system login defaults to the service's servers."""
    sessions = settings.sessions
    assert sessions.system is not None  # noqa: S101 - the settings validator guarantees it
    system = sessions.system
    if "servers" not in system.model_fields_set:
        system = system.model_copy(update={"servers": settings.nats.servers})
    return LiveSessions(
        sessions,
        policy_directory=settings.policy.directory,
        metrics=metrics,
        audit=audit,
        system_options=connect_options(system),
    )
