"""A real password verifier (real argon2) that counts what it runs: the work a response time is
made of, counted where it happens instead of timed."""

from __future__ import annotations

from callout.backends.passwords import PasswordVerifier


class CountingVerifier(PasswordVerifier):
    """``calls``: every verification, dummy ones included; ``dummies``: the dummy ones."""

    def __init__(self, max_workers: int = 1) -> None:
        super().__init__(max_workers=max_workers)
        self.calls = 0
        self.dummies = 0

    async def verify(self, stored_hash: str, password: str) -> bool:
        self.calls += 1
        return await super().verify(stored_hash, password)

    async def verify_dummy(self, password: str) -> None:
        self.dummies += 1
        await super().verify_dummy(password)
