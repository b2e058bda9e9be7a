"""Reload on file changes: watch the policy and key *directories*, debounce, call reload.

Directories, not files: Kubernetes updates ConfigMap and Secret volumes by swapping a
``..data`` symlink, and a watch on the file dies with the first replaced inode
(docs/operations.md#reload). Every event (filtered by nothing: dot-names matter here) leads to one
`reload` call after ``debounce`` of quiet; the reload itself compares digests and keeps the
last good state on any error, so a burst of events costs at most a few re-reads. ``relevant``
drops events for files the service does not read (a log file written next to the keys).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import structlog
from watchfiles import awatch

log = structlog.get_logger("callout.reload")

_STEP_MS = 50  # quiet time that ends a burst of events early


class DirectoryWatcher:
    """Calls ``reload`` after changes under ``directories`` until `stop`."""

    def __init__(
        self,
        directories: Iterable[Path],
        reload: Callable[[], Awaitable[object]],
        *,
        relevant: Callable[[Path], bool] = lambda _: True,
        debounce: float = 0.2,
        force_polling: bool = False,
        poll_interval: float = 0.3,
    ) -> None:
        self.directories = sorted({path.resolve() for path in directories})
        self.reload = reload
        self.relevant = relevant
        self.debounce_ms = max(_STEP_MS, int(debounce * 1000))
        self.force_polling = force_polling
        self.poll_delay_ms = max(10, int(poll_interval * 1000))
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start watching. The watch is in place when this returns: the task's first step
        sets up the OS watch synchronously, before its first real suspension."""
        self._task = asyncio.create_task(self._run(), name="reload-watcher")
        for _ in range(3):
            await asyncio.sleep(0)

    async def _run(self) -> None:
        log.info(
            "reload_watch_started",
            directories=[str(path) for path in self.directories],
            polling=self.force_polling,
        )
        try:
            async for changes in awatch(
                *self.directories,
                watch_filter=None,
                debounce=self.debounce_ms,
                step=min(_STEP_MS, self.debounce_ms),
                stop_event=self._stop,
                force_polling=self.force_polling,
                poll_delay_ms=self.poll_delay_ms,
            ):
                paths = sorted({Path(path) for _, path in changes if self.relevant(Path(path))})
                if not paths:
                    continue
                log.debug("reload_triggered", files=[path.name for path in paths[:20]])
                await self.reload()
        except Exception as error:  # noqa: BLE001 - losing the watch must not stop the service
            log.error(  # noqa: TRY400 - the message is the diagnosis; SIGHUP still works
                "reload_watch_failed", error=type(error).__name__, detail=str(error)
            )

    async def stop(self) -> None:
        self._stop.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=2.0)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
