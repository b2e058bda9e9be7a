"""Verifying password hashes off the event loop (`callout.credentials.passwords` has the formats).

Every KDF call runs in one bounded thread pool: the KDFs release the GIL, and the bound caps
memory (19 MiB per argon2 worker) and keeps a login flood off the loop. The pool's threads run
at a lower CPU priority (`KDF_NICE`): they use every idle cycle, but the event loop (nkey, token
and cached logins, replies) and nats-server beside it come first when the CPU is contended, so a
flood of wrong passwords cannot starve cheap logins of CPU either.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from callout.backends.equalcost import note_kdf
from callout.credentials.passwords import hash_password, verify_hash

KDF_NICE = 10  # added to the KDF threads' nice value (Linux schedules threads one by one)


def _lower_priority() -> None:
    """Run the calling thread ``KDF_NICE`` steps nicer (lower priority); where the system does
    not allow it, it keeps its priority (nothing else changes)."""
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + KDF_NICE)
    except (AttributeError, OSError):  # not Linux-like, or refused: a priority, not a must
        return


class PasswordVerifier:
    """Verifies passwords in a bounded thread pool; unknown users cost the same time."""

    def __init__(self, max_workers: int | None = None) -> None:
        workers = max_workers if max_workers is not None else (os.cpu_count() or 1)
        if workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.workers = workers
        self.verifications = 0  # KDF verifications started (dummy ones included)
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="kdf", initializer=_lower_priority
        )
        # A real OWASP argon2id hash of a random password, so a dummy verify costs as much
        # as a real one and never succeeds.
        self._dummy_hash = hash_password(secrets.token_urlsafe(32))

    async def verify(self, stored_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash``; a malformed hash is a False."""
        loop = asyncio.get_running_loop()
        note_kdf()
        self.verifications += 1
        return await loop.run_in_executor(self._executor, verify_hash, stored_hash, password)

    async def verify_dummy(self, password: str) -> None:
        """Spend one argon2 verify on nothing, so unknown users are not told by timing."""
        await self.verify(self._dummy_hash, password)

    def close(self) -> None:
        """Stop the pool; running verifications finish, queued ones are cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)
