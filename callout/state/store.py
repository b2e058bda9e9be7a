"""`SharedStore`: the buckets on the service's own connection, and the fallback to local state.

It opens (or creates) each bucket, follows it with a watch into its `Mirror`, and writes the
mirror's pending changes as they come. Every KV call is bounded by ``state.timeout``; a failed
or timed-out call, or a watch that falls behind the bucket, switches to local state (the
mirrors keep what they had and the local throttle and deny list keep working); a probe every
``state.check_interval`` reopens the buckets and switches back. Nothing here is awaited by a
login.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from callout.settings import StateSettings
from callout.state.health import StateHealth
from callout.state.mirror import DELETED, Mirror

log = structlog.get_logger("callout.state")

_STALLED_PROBES = 2  # probes in a row that see the bucket ahead of the watch
# Written by every probe: a write needs the bucket's quorum (a read may be answered without
# one), and it moves the bucket on, so a watch that stopped is seen behind it.
PROBE_KEY = "_probe"


class _Followed:
    """One open bucket: its watch task and the revisions seen."""

    def __init__(self, mirror: Mirror, kv: KeyValue) -> None:
        self.mirror = mirror
        self.kv = kv
        self.seen = 0
        self.behind = 0
        self.caught_up = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []


class SharedStore:
    def __init__(
        self, settings: StateSettings, mirrors: Sequence[Mirror], health: StateHealth
    ) -> None:
        self.settings = settings
        self.mirrors = tuple(mirrors)
        self.health = health
        self._js: JetStreamContext | None = None
        self._open: list[_Followed] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def up(self) -> bool:
        return self.health.up

    async def start(self, nc: NatsClient) -> None:
        """Open the buckets (bounded; on failure the replica starts on local state) and keep
        them open in the background."""
        self._js = nc.jetstream(timeout=self.settings.timeout)
        await self._reopen()
        self._supervisor = asyncio.create_task(self._supervise())

    async def stop(self, write_within: float = 0.0) -> None:
        """Stop watching and writing. With ``write_within`` (a drain), what still waits to be
        written is written first, within that many seconds: the counts and decision-cache
        entries of the last logins reach the other replicas (and this one restarted) instead
        of leaving with it. A forced stop writes nothing."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        opened = list(self._open)
        await self._close()  # a batch in flight goes back to its mirror's pending changes
        if write_within > 0 and self.up:
            await self._write_last(opened, write_within)

    async def _write_last(self, opened: list[_Followed], within: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        for followed in opened:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                writing = followed.mirror.flush(followed.kv, self.settings.timeout)
                await asyncio.wait_for(writing, left)
            except Exception as error:  # noqa: BLE001 - leaving anyway: say what was not written
                why = type(error).__name__
                log.warning("shared_state_unwritten", bucket=followed.mirror.bucket, error=why)

    async def _supervise(self) -> None:
        interval = self.settings.check_interval
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)
            if self._stopping.is_set():
                return
            if self.up:
                await self._probe()
            else:
                await self._reopen()

    async def _reopen(self) -> None:
        await self._close()
        try:
            for mirror in self.mirrors:
                await self._follow(mirror)
            for followed in self._open:
                wait = 4 * self.settings.timeout
                await asyncio.wait_for(followed.caught_up.wait(), wait)
                # What expired before the watch started is no revision it could see.
                status = await asyncio.wait_for(followed.kv.status(), wait)
                followed.seen = max(followed.seen, status.stream_info.state.last_seq)
                await asyncio.wait_for(followed.mirror.opened(followed.kv), wait)
        except Exception as error:  # noqa: BLE001 - any failure means local state, never a crash
            self.health.failed("open", error)
            await self._close()
            return
        self.health.recovered()

    async def _follow(self, mirror: Mirror) -> None:
        assert self._js is not None  # noqa: S101 - start() set it
        kv = await self._bucket(self._js, mirror)
        followed = _Followed(mirror, kv)
        watcher = await asyncio.wait_for(kv.watchall(), self.settings.timeout)
        self._open.append(followed)

        async def watch() -> None:
            try:
                async for entry in watcher:
                    if entry is None:  # the initial content has been delivered
                        followed.caught_up.set()
                        continue
                    if entry.key != PROBE_KEY:
                        deleted = entry.operation in DELETED
                        mirror.apply(entry.key, None if deleted else entry.value, entry.revision)
                    followed.seen = max(followed.seen, entry.revision)
            finally:
                with contextlib.suppress(Exception):
                    await watcher.stop()  # type: ignore[no-untyped-call] # nats-py has no annotation

        followed.tasks.append(asyncio.create_task(watch()))
        followed.tasks.append(asyncio.create_task(self._writer(followed)))

    async def _bucket(self, js: JetStreamContext, mirror: Mirror) -> KeyValue:
        timeout = self.settings.timeout
        try:
            return await asyncio.wait_for(js.key_value(mirror.bucket), timeout)
        except BucketNotFoundError:
            if not self.settings.create_buckets:
                raise
        config = KeyValueConfig(
            bucket=mirror.bucket, history=1, ttl=mirror.ttl, replicas=self.settings.replicas
        )
        log.info("shared_state_bucket_created", bucket=mirror.bucket, replicas=config.replicas)
        return await asyncio.wait_for(js.create_key_value(config), 4 * timeout)

    async def _writer(self, followed: _Followed) -> None:
        mirror = followed.mirror
        while True:  # first what waited while KV was away
            mirror.wakeup.clear()
            try:
                await mirror.flush(followed.kv, self.settings.timeout)
            except Exception as error:  # noqa: BLE001 - KV failed: local state until it is back
                self.health.failed("write", error)
                return
            await mirror.wakeup.wait()

    async def _probe(self) -> None:
        """The bucket takes a write, and the watch has seen the revision before it (else it
        stalled)."""
        for followed in self._open:
            try:
                status = await asyncio.wait_for(followed.kv.status(), self.settings.timeout)
                await asyncio.wait_for(followed.kv.put(PROBE_KEY, b""), self.settings.timeout)
            except Exception as error:  # noqa: BLE001 - any failure means local state
                self.health.failed("probe", error)
                return
            last = status.stream_info.state.last_seq
            followed.behind = followed.behind + 1 if last > followed.seen else 0
            if followed.behind >= _STALLED_PROBES:
                self.health.failed("watch", f"watch behind the bucket at revision {last}")
                return

    async def caught_up(self) -> bool:
        """Whether every watch has seen its bucket's last revision (False on any failure)."""
        if not self.up:
            return False
        for followed in self._open:
            try:
                status = await asyncio.wait_for(followed.kv.status(), self.settings.timeout)
            except Exception:  # noqa: BLE001 - a question, not a fault
                return False
            if status.stream_info.state.last_seq > followed.seen:
                return False
        return True

    async def _close(self) -> None:
        tasks = [task for followed in self._open for task in followed.tasks]
        self._open = []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
