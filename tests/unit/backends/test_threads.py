"""The daemon pool for blocking libraries: results, errors, bounds, and an exit it never blocks."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from callout.backends.threads import DaemonExecutor


async def test_calls_return_results_and_raise_errors_through_the_event_loop() -> None:
    pool = DaemonExecutor(2, thread_name_prefix="t")
    loop = asyncio.get_running_loop()
    try:
        assert await loop.run_in_executor(pool, sum, [1, 2, 3]) == 6
        with pytest.raises(ZeroDivisionError):
            await loop.run_in_executor(pool, divmod, 1, 0)
    finally:
        pool.shutdown(wait=True)


def test_threads_are_daemons_and_never_more_than_max_workers() -> None:
    pool = DaemonExecutor(2, thread_name_prefix="t")
    release = threading.Event()
    futures = [pool.submit(release.wait, 5) for _ in range(5)]
    try:
        threads = [t for t in threading.enumerate() if t.name.startswith("t_")]
        assert len(threads) == 2
        assert all(t.daemon for t in threads)
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert all(f.result() for f in futures)


def test_shutdown_cancels_queued_calls_and_refuses_new_ones() -> None:
    pool = DaemonExecutor(1, thread_name_prefix="t")
    release = threading.Event()
    running = pool.submit(release.wait, 5)
    queued = pool.submit(release.wait, 5)
    pool.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert queued.cancelled()
    assert running.result(5) is True
    with pytest.raises(RuntimeError):
        pool.submit(release.wait, 5)


def test_a_call_blocked_forever_does_not_keep_the_process_alive() -> None:
    """The reason this pool exists: the standard executor joins its threads at exit."""
    program = (
        "import threading\n"
        "from callout.backends.threads import DaemonExecutor\n"
        "pool = DaemonExecutor(1, thread_name_prefix='t')\n"
        "pool.submit(threading.Event().wait)\n"
        "pool.shutdown(wait=False)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], timeout=30, check=False)
    assert done.returncode == 0
