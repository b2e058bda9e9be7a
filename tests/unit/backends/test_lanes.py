"""Which lane a request takes, as the chain tells: one decision function, the lane is data."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from callout.backends.base import lane_of
from callout.backends.cache import CachedBackend, DecisionCache
from callout.backends.chain import BackendStats, ReportedBackend
from callout.backends.ldap import DirectoryUser, LdapBackend
from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.backends.tokens import TokenBackend
from callout.credentials.passwords import hash_password
from callout.credentials.tokens import hmac_hash, new_token
from callout.decision import Identity, Lane, Reason
from callout.policy import PolicySnapshot
from callout.protocol.claims import AuthRequest
from callout.protocol.nkeys import KeyPair, KeyRole
from tests.unit.policy.helpers import request, snapshot

PEPPER = b"p" * 32
TOKEN = new_token("nac", "ci-deploy")
SLOW = new_token("nac", "old-style")
SENSOR = KeyPair.generate(KeyRole.USER)


class _Directory:
    """The directory port: knows nobody (its cost is what matters here)."""

    async def verify(self, login: str, password: str) -> DirectoryUser | Reason:
        return Reason.UNKNOWN_USER

    def close(self) -> None:
        pass


@pytest.fixture
def verifier() -> Iterator[PasswordVerifier]:
    pool = PasswordVerifier(max_workers=1)
    yield pool
    pool.close()


@pytest.fixture
def policy(tmp_path: Path) -> PolicySnapshot:
    slow_hash = bcrypt.hashpw(SLOW.text.encode(), bcrypt.gensalt(4)).decode()
    return snapshot(
        tmp_path,
        f"""
        roles:
          app: {{publish: {{allow: ["app.>"]}}}}
        users:
          alice: {{password: "{hash_password("pw")}", roles: [app]}}
          sensor: {{nkey: {SENSOR.public_key}, roles: [app]}}
        tokens:
          ci-deploy: {{hash: "{hmac_hash(PEPPER, TOKEN.text)}", owner: ci, roles: [app]}}
          old-style: {{hash: "{slow_hash}", owner: ci, roles: [app]}}
        """,
    )


def _chain(verifier: PasswordVerifier, cache: DecisionCache) -> list[object]:
    stats = BackendStats()
    return [
        ReportedBackend(TokenBackend(PEPPER, verifier), stats),
        ReportedBackend(CachedBackend(LdapBackend(_Directory(), final=False), cache), stats),
        ReportedBackend(CachedBackend(StaticBackend(verifier), cache), stats),
    ]


@pytest.mark.parametrize(
    ("login", "lane"),
    [
        (request(nkey=SENSOR.public_key), Lane.CHEAP),
        (request(token=TOKEN.text), Lane.CHEAP),
        (request(token="nac_nosuchid_" + "x" * 43), Lane.CHEAP),  # an unknown id: one HMAC
        (request(token=SLOW.text), Lane.EXPENSIVE),  # a bcrypt entry
        (request(user="alice", password="pw"), Lane.EXPENSIVE),  # LDAP first, then argon2
        (request(user="alice", password=""), Lane.CHEAP),  # LDAP refuses an empty password
        (request(), Lane.CHEAP),  # nothing to verify
    ],
    ids=["nkey", "hmac-token", "unknown-token", "bcrypt-token", "password", "empty", "none"],
)
def test_the_chain_says_what_a_credential_costs(
    verifier: PasswordVerifier, policy: PolicySnapshot, login: AuthRequest, lane: Lane
) -> None:
    cache = DecisionCache(ttl=60, max_entries=10)
    assert lane_of(_chain(verifier, cache), login, policy) is lane


async def test_a_password_the_cache_holds_is_cheap(
    verifier: PasswordVerifier, policy: PolicySnapshot
) -> None:
    cache = DecisionCache(ttl=60, max_entries=10)
    chain = _chain(verifier, cache)
    login = request(user="alice", password="pw")

    async def verified() -> Identity:
        return Identity("alice", "static")

    await cache.through(policy.digest, cache.key(policy.digest, "static", "alice", "pw"), verified)
    assert lane_of(chain[2:], login, policy) is Lane.CHEAP
    assert lane_of(chain[2:], request(user="alice", password="other"), policy) is Lane.EXPENSIVE


async def test_a_password_being_verified_already_shares_that_flight(
    verifier: PasswordVerifier, policy: PolicySnapshot
) -> None:
    """A reconnect storm of one account: one verification, everyone else waits for it."""
    cache = DecisionCache(ttl=60, max_entries=10)
    chain = _chain(verifier, cache)
    release = asyncio.Event()

    async def slow() -> Identity:
        await release.wait()
        return Identity("alice", "static")

    key = cache.key(policy.digest, "static", "alice", "pw")
    flight = asyncio.create_task(cache.through(policy.digest, key, slow))
    await asyncio.sleep(0)
    assert lane_of(chain[2:], request(user="alice", password="pw"), policy) is Lane.SHARED
    release.set()
    await flight
    assert lane_of(chain[2:], request(user="alice", password="pw"), policy) is Lane.CHEAP


def test_a_backend_that_does_not_tell_takes_everything_in_the_cheap_lane(
    policy: PolicySnapshot,
) -> None:
    """As before lanes existed: under service.max_concurrency, and first in the chain wins."""

    class _Unknown:
        name = "custom"

    chain = [_Unknown(), TokenBackend(PEPPER, PasswordVerifier(max_workers=1))]
    assert lane_of(chain, request(token=SLOW.text), policy) is Lane.CHEAP
