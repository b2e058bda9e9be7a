"""Benchmark scenarios: who logs in, how, and with which service settings."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, overload

from callout.bench.rawnats import Credential
from callout.credentials.passwords import hash_password
from callout.credentials.tokens import hmac_hash, new_token
from callout.protocol.nkeys import KeyPair, KeyRole

USERS = 8
FLOOR = "floor"
PEPPER = b"bench-pepper-not-a-secret-0123456789abcdef"


@dataclass(frozen=True)
class BenchIdentities:
    """The users every run knows: password users and nkey users, same in baseline and service."""

    passwords: dict[str, str]
    nkeys: dict[str, KeyPair]
    tokens: dict[str, str]

    @classmethod
    def create(cls, count: int = USERS) -> BenchIdentities:
        tokens = [new_token("nac", f"bench{i}") for i in range(count)]
        return cls(
            passwords={f"bench-{i}": f"bench-pw-{i}" for i in range(count)},
            nkeys={f"sensor-{i}": KeyPair.generate(KeyRole.USER) for i in range(count)},
            tokens={token.id: token.text for token in tokens},
        )

    def policy_yaml(self, account: str) -> str:
        lines = ["version: 1", "defaults:", f"  account: {account}", "  expiry: 1h", "roles:"]
        lines += [
            "  bench:",
            '    publish: {allow: ["bench.>"]}',
            '    subscribe: {allow: ["bench.>", "_INBOX.>"]}',
        ]
        lines.append("users:")
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # thousands of users: argon2id
            hashes = pool.map(hash_password, self.passwords.values())
        for name, stored in zip(self.passwords, hashes, strict=True):
            lines += [f"  {name}:", f'    password: "{stored}"', "    roles: [bench]"]
        for name, key in self.nkeys.items():
            lines += [f"  {name}:", f"    nkey: {key.public_key}", "    roles: [bench]"]
        lines.append("tokens:")
        for token_id, text in self.tokens.items():
            lines += [f"  {token_id}:", f'    hash: "{hmac_hash(PEPPER, text)}"']
            lines += ["    owner: bench", "    roles: [bench]", '    expires: "2099-01-01"']
        return "\n".join(lines) + "\n"

    def static_users(self) -> str:
        """The same users as a nats-server static config (the baseline)."""
        entries = [f'{{user: "{n}", password: "{p}"}}' for n, p in self.passwords.items()]
        entries += [f"{{nkey: {k.public_key}}}" for k in self.nkeys.values()]
        return ",\n    ".join(entries)

    def password_credentials(self, wrong: bool = False) -> list[Credential]:
        return [
            Credential({"user": name, "pass": ("wrong-" if wrong else "") + password})
            for name, password in self.passwords.items()
        ]

    def nkey_credentials(self) -> list[Credential]:
        return [Credential(nkey=key) for key in self.nkeys.values()]

    def token_credentials(self) -> list[Credential]:
        return [Credential({"auth_token": text}) for text in self.tokens.values()]


class NewNames(Sequence[Credential]):
    """Wrong passwords, each for a user name nobody used before: ``unknown-<random>-<n>``, a
    fresh random part per list, made as the load generator asks for them (it cycles through
    ``len`` items, more than any window logs in)."""

    def __init__(self, size: int = 1 << 30) -> None:
        self._prefix = f"unknown-{secrets.token_hex(4)}"
        self._size = size

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, index: int) -> Credential: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Credential]: ...
    def __getitem__(self, index: int | slice) -> Credential | Sequence[Credential]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._size))]
        if not -self._size <= index < self._size:
            raise IndexError(index)
        number = index % self._size
        return Credential({"user": f"{self._prefix}-{number}", "pass": "wrong-guess"})


def new_name_guesses(_: BenchIdentities) -> Sequence[Credential]:
    return NewNames()


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    credentials: Callable[[BenchIdentities], Sequence[Credential]]
    xkey: bool = False
    expect_ok: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    tokens: bool = False  # the token backend, with the bench pepper, ahead of the static one
    # Load run alongside the measured logins (reported as its own row): its credentials and
    # concurrency. For starvation: do cheap logins wait behind a saturated argon2 pool?
    background: Callable[[BenchIdentities], Sequence[Credential]] | None = None
    background_concurrency: int = 32
    # The floor responder (`callout.bench.floor`) instead of `callout serve`: the yardstick
    floor: bool = False

    @property
    def fresh_kdf(self) -> bool:
        """Cache off: password logins (measured or background) run argon2id every time."""
        return self.settings.get("decision_cache") == _NO_CACHE["decision_cache"]


_NO_CACHE = {"decision_cache": {"ttl": 0}}
# Limits no benchmark reaches: every failure is counted (and, with shared state, written),
# none is dropped for the limit. Not higher: a bucket drains one attempt per window / limit
# seconds, and at 10**9 that (60 ns) is below the resolution of a wall-clock time stored as a
# float, so an attempt would not move a bucket at all (nothing counted, nothing written).
RAISED_THROTTLE = {
    "throttle": {
        "max_failures_per_principal": 10**6,
        "max_failures_per_ip": 10**6,
        "max_failures_per_principal_unfamiliar": 10**6,
    }
}


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            FLOOR,
            "the minimal valid responder on nats-py (verify, sign two JWTs, publish): the floor",
            BenchIdentities.password_credentials,
            floor=True,
        ),
        Scenario("nkey", "nkey users, nonce signature verified", BenchIdentities.nkey_credentials),
        Scenario(
            "nkey-xkey",
            "nkey users, xkey-encrypted requests and answers",
            BenchIdentities.nkey_credentials,
            xkey=True,
        ),
        Scenario(
            "password-cached",
            "password users, decision cache on (the default): argon2id once per TTL",
            BenchIdentities.password_credentials,
        ),
        Scenario(
            "password-fresh",
            "password users, decision cache off: argon2id verified on every login",
            BenchIdentities.password_credentials,
            settings=_NO_CACHE,
        ),
        Scenario(
            "token",
            "opaque API tokens (HMAC-SHA256 under a pepper)",
            BenchIdentities.token_credentials,
            tokens=True,
        ),
        Scenario(
            "nkey-beside-fresh",
            "nkey users while 32 clients log in with fresh argon2id passwords (starvation)",
            BenchIdentities.nkey_credentials,
            settings=_NO_CACHE,
            background=BenchIdentities.password_credentials,
        ),
        Scenario(
            "wrong-password",
            "password users with a wrong password (argon2id, refused)",
            lambda ids: ids.password_credentials(wrong=True),
            expect_ok=False,
            # Throttling would drop these after a few failures (clients then wait out the
            # server's timeout): off, to measure the deny path itself.
            settings={**_NO_CACHE, "throttle": {"enabled": False}},
        ),
        Scenario(
            "wrong-password-new-name",
            "a wrong password for a new name each login: every one counted by the throttle"
            " (with shared state: written with compare-and-set and confirmed), then argon2id",
            new_name_guesses,
            expect_ok=False,
            settings=RAISED_THROTTLE,
        ),
    )
}
