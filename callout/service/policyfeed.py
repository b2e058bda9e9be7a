"""Every replica on the bucket's newest good policy (`policy.source: kv`).

`PolicyFeed` watches the bundle key of the policy bucket. Each new revision is decoded and
checked again here (`check_texts`, the checker `callout policy push` ran), then swapped in
through the reloader, like a changed policy file: the `Runtime` is replaced whole, and a
request keeps the one it started with. A revision that is not a valid bundle, does not check,
or does not reload (keys, settings) is refused and counted; the last good policy stays. A
replica that runs an older revision than the newest it has seen shows it as drift (metric and
``/readyz``).

A timer reads the newest revision every ``check_interval`` as well: it measures drift while
the watch is quiet, and applies a revision the watch missed (a watch lost with a server).
Until the first bundle arrives, the policy is empty: every login is refused and ``/readyz``
says ``policy_loaded: false``. A replica that starts while the newest revision is refused
takes the newest good one the bucket keeps (``policy_bundle_fallback``, with drift). The
bucket unreachable: the last good policy stays, the state change is logged once, and the
replica retries.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import MappingProxyType
from typing import Any

import structlog

from callout.observability.distribution import DistributionMetrics
from callout.observability.metrics import Metrics
from callout.policy.bundle import PolicyBundle
from callout.policy.compiler import Merged
from callout.policy.snapshot import PolicySnapshot
from callout.policy.texts import CheckResult, check_texts
from callout.protocol.port import Connection
from callout.service.policystore import (
    BUNDLE_KEY,
    Revision,
    history,
    latest_revision,
    open_bucket,
    revision_of,
)
from callout.service.reloader import Reloader
from callout.service.runtime import Runtime
from callout.settings import PolicyKvSettings

log = structlog.get_logger("callout.policy")

_MAX_LOGGED_ISSUES = 20
_RETRY_FIRST = 0.25  # seconds; doubles up to check_interval while the bucket is unreachable


class PolicyFeed:
    """The policy source of a replica whose policy lives in a KV bucket."""

    def __init__(self, settings: PolicyKvSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.stats = DistributionMetrics(metrics.registry)
        self.reloader: Reloader | None = None  # set by `attach`, before `start`
        self.active_revision = 0
        self.latest_revision = 0
        self._handled = 0  # newest revision applied or refused
        self._accepted: tuple[Revision, PolicyBundle, CheckResult] | None = None
        self._empty = _empty_result(f"kv:{settings.bucket} (no bundle yet)")
        self._apply_lock = asyncio.Lock()
        self._first = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._watcher: Any = None
        self._reachable: bool | None = None

    def policy(self) -> CheckResult:
        """The reloader's policy source: the accepted bundle's check, or an empty policy."""
        return self._empty if self._accepted is None else self._accepted[2]

    def attach(self, reloader: Reloader) -> None:
        self.reloader = reloader
        reloader.listeners.append(self._swapped)

    def details(self) -> dict[str, Any]:
        """The ``/readyz`` body's ``policy`` part."""
        return {
            "source": "kv",
            "bucket": self.settings.bucket,
            "digest": self.reloader.current().policy.digest if self.reloader else "",
            "revision": self.active_revision,
            "bucket_revision": self.latest_revision,
            "drift": self.latest_revision > self.active_revision,
            "bucket_reachable": bool(self._reachable),
        }

    async def start(self, nc: Connection) -> None:
        """Watch the bucket; return once the first bundle is applied (or refused), the bucket
        is found unreachable, or ``initial_wait`` has passed."""
        js: Any = nc.jetstream()
        self._tasks = [
            asyncio.create_task(self._watch(js), name="policy-watch"),
            asyncio.create_task(self._poll(js), name="policy-poll"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first.wait(), self.settings.initial_wait)

    async def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._watcher.stop(), 1.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _watch(self, js: Any) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                kv = await open_bucket(js, self.settings)
                self._watcher = await kv.watch(BUNDLE_KEY)
                self._reached(True)
                failures = 0
                async for entry in self._watcher:
                    if entry is None:  # the initial values have been delivered
                        await self._start_from_history(kv)
                        self._first.set()
                        continue
                    await self._apply(revision_of(entry))
                    self._first.set()
            except Exception as error:  # noqa: BLE001 - the feed must outlive any NATS fault
                self._reached(False, error)
                self._first.set()
            failures += 1
            await self._sleep(min(self.settings.check_interval, _RETRY_FIRST * 2.0**failures))

    async def _poll(self, js: Any) -> None:
        while not self._stopping.is_set():
            await self._sleep(self.settings.check_interval)
            try:
                kv = await open_bucket(js, self.settings)
                latest = await latest_revision(kv)
                if latest is not None and latest > self._handled:
                    entry = await kv.get(BUNDLE_KEY)
                    await self._apply(revision_of(entry))
                self._reached(True)
            except Exception as error:  # noqa: BLE001 - the feed must outlive any NATS fault
                self._reached(False, error)

    async def _apply(self, revision: Revision) -> None:
        async with self._apply_lock:
            if revision.revision <= self._handled:
                return  # the watch and the timer both saw it
            self._handled = revision.revision
            self.latest_revision = max(self.latest_revision, revision.revision)
            try:
                await self._check_and_swap(revision)
            finally:
                self._observe()

    async def _start_from_history(self, kv: Any) -> None:
        """A replica starting while the newest revision is refused has no last good policy
        of its own: it takes the newest good revision the bucket still keeps (with drift)."""
        if self.active_revision or not self._handled:
            return
        async with self._apply_lock:
            for older in reversed(await history(kv)):
                if older.revision < self._handled and await self._check_and_swap(older):
                    log.warning("policy_bundle_fallback", revision=older.revision)
                    break
            self._observe()

    async def _check_and_swap(self, revision: Revision) -> bool:
        """Check ``revision`` and swap it in; False (refused, counted, logged) otherwise."""
        number, bundle = revision.revision, revision.bundle
        if bundle is None:
            self._refused(number, "invalid", [revision.problem])
            return False
        result = check_texts(bundle.files, source=f"kv:{self.settings.bucket}#{number}")
        if result.snapshot is None:
            self._refused(number, "check", [issue.render() for issue in result.errors])
            return False
        assert self.reloader is not None  # noqa: S101 - attached before start
        previous, self._accepted = self._accepted, (revision, bundle, result)
        if not await self.reloader.reload_in_thread("kv"):
            self._accepted = previous
            self._refused(number, "reload", ["the keys or settings did not load: reload_failed"])
            return False
        self._swapped(self.reloader.current())  # also when the digest was already running
        log.info(
            "policy_bundle_applied",
            revision=number,
            digest=bundle.digest,
            pushed_by=bundle.pushed_by,
            pushed_at=bundle.pushed_at.isoformat(),
        )
        return True

    def _swapped(self, runtime: Runtime) -> None:
        """A runtime went in: it runs the accepted revision if it has its digest."""
        if self._accepted is not None and runtime.policy.digest == self._accepted[1].digest:
            self.active_revision = self._accepted[0].revision

    def _refused(self, number: int, reason: str, issues: list[str]) -> None:
        self.stats.rejected.labels(reason).inc()
        log.error(
            "policy_bundle_rejected",
            revision=number,
            reason=reason,
            active_revision=self.active_revision,
            issues=issues[:_MAX_LOGGED_ISSUES],
        )

    def _observe(self) -> None:
        self.stats.observed(active=self.active_revision, latest=self.latest_revision)

    def _reached(self, reachable: bool, error: BaseException | None = None) -> None:
        self.stats.bucket_reachable.set(1 if reachable else 0)
        if reachable == self._reachable:
            return
        self._reachable = reachable
        if reachable:
            log.info("policy_bucket_watched", bucket=self.settings.bucket)
        else:
            log.warning(
                "policy_bucket_unreachable",
                bucket=self.settings.bucket,
                error=type(error).__name__,
                detail=str(error)[:200],
                active_revision=self.active_revision,
            )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def _empty_result(source: str) -> CheckResult:
    """No policy: every login is refused, and the digest is empty (`policy_loaded` false)."""
    empty = PolicySnapshot(
        digest="",
        source=source,
        users=MappingProxyType({}),
        nkeys=MappingProxyType({}),
        groups=MappingProxyType({}),
    )
    return CheckResult(snapshot=empty, merged=Merged())
