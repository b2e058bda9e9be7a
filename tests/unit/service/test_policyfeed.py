"""The replica side of policies in KV, without NATS: revisions given as values to a feed
attached to a real reloader (real keys, real compiler). A broken revision never replaces the
running policy, and the drift says so."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from callout.devserver.config_mode import ConfigModeSetup
from callout.errors import ConfigError
from callout.observability.metrics import Metrics
from callout.policy.bundle import make_bundle
from callout.service.policyfeed import PolicyFeed
from callout.service.policystore import Revision
from callout.service.reloader import Reloader, restart_sections
from callout.settings import PolicySource

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
GOOD = "version: 1\nusers:\n  a:\n    nkey: {key}\n    account: APP\n"
NKEY = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"


def _revision(number: int, text: str | None) -> Revision:
    if text is None:
        return Revision(number, WHEN, 3, None, "not a policy bundle: ...")
    bundle = make_bundle({"p.yaml": text}, pushed_by="t", pushed_at=WHEN)
    return Revision(number, WHEN, len(text), bundle)


@pytest.fixture
def feed(tmp_path: Path) -> PolicyFeed:
    setup = ConfigModeSetup(tmp_path / "keys", 4222).write()
    settings = setup.settings(tmp_path / "absent", policy={"source": "kv"})
    metrics = Metrics()
    made = PolicyFeed(settings.policy.kv, metrics)
    made.attach(Reloader(settings, metrics=metrics, policy=made.policy))
    return made


def _digest(feed: PolicyFeed) -> str:
    assert feed.reloader is not None
    return feed.reloader.current().policy.digest


async def test_no_bundle_yet_is_an_empty_policy_that_is_not_loaded(feed: PolicyFeed) -> None:
    """Deny by default: before the first bundle nothing is allowed and readiness says so; the
    policy directory (absent here) is never read."""
    assert feed.reloader is not None
    assert not feed.reloader.policy_loaded()
    assert feed.reloader.current().policy.users == {}
    assert feed.details()["revision"] == 0


async def test_good_revisions_swap_in_and_broken_ones_never_do(feed: PolicyFeed) -> None:
    await feed._apply(_revision(3, GOOD.format(key=NKEY)))
    running = _digest(feed)
    assert running
    assert feed.details() | {"digest": ""} == {
        "source": "kv",
        "bucket": "callout_policy",
        "digest": "",
        "revision": 3,
        "bucket_revision": 3,
        "drift": False,
        "bucket_reachable": False,
    }
    await feed._apply(_revision(4, "version: 1\nusers:\n  a:\n    rolez: []\n"))
    await feed._apply(_revision(5, None))
    assert _digest(feed) == running
    assert (feed.active_revision, feed.latest_revision) == (3, 5)
    assert feed.details()["drift"] is True
    rejected = feed.stats.rejected
    assert rejected.labels("check")._value.get() == 1
    assert rejected.labels("invalid")._value.get() == 1
    assert feed.stats.drift._value.get() == 1


async def test_the_same_policy_pushed_again_moves_the_revision(feed: PolicyFeed) -> None:
    """A rollback to the running content is a new revision with the same digest: no swap is
    needed, but the replica runs the newest revision and has no drift."""
    await feed._apply(_revision(3, GOOD.format(key=NKEY)))
    await feed._apply(_revision(4, "not: [valid"))
    await feed._apply(_revision(6, GOOD.format(key=NKEY)))
    assert (feed.active_revision, feed.latest_revision) == (6, 6)
    assert feed.details()["drift"] is False


async def test_old_or_repeated_revisions_are_ignored(feed: PolicyFeed) -> None:
    """The watch and the timer may both deliver a revision; an older one never goes back."""
    await feed._apply(_revision(7, GOOD.format(key=NKEY)))
    await feed._apply(_revision(5, "version: 1\n"))
    assert feed.active_revision == 7
    assert feed.stats.rejected.labels("check")._value.get() == 0


def test_changing_the_policy_source_needs_a_restart(tmp_path: Path) -> None:
    setup = ConfigModeSetup(tmp_path / "keys", 4222).write()
    files = setup.settings(tmp_path)
    kv = setup.settings(tmp_path, policy={"source": PolicySource.KV})
    assert restart_sections(files, kv) == ["policy.source/policy.kv"]


def test_a_bucket_name_that_is_not_a_kv_name_is_refused(tmp_path: Path) -> None:
    setup = ConfigModeSetup(tmp_path / "keys", 4222).write()
    with pytest.raises(ConfigError, match=r"policy\.kv\.bucket"):
        setup.settings(tmp_path, policy={"source": "kv", "kv": {"bucket": "a.b"}})
