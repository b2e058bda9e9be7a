"""The server-version guard on plain values: counted per band, logged once per version,
refused with a signed deny only when the settings say so."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.credentials.passwords import hash_password
from callout.decision import Reason
from callout.observability.metrics import Metrics
from callout.policy.loader import load_policy
from callout.policy.snapshot import PolicySnapshot
from callout.protocol import jwt
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import Pipeline
from callout.service.runtime import Runtime
from callout.service.versionguard import VersionGuard
from callout.settings.versions import ServerVersionSettings, VersionAction
from callout.testing import ServerSimulator

NOW = 1_800_000_000
ISSUER = KeyPair.generate(KeyRole.ACCOUNT)


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> PolicySnapshot:
    directory = tmp_path_factory.mktemp("policy")
    (directory / "p.yaml").write_text(
        f"""
version: 1
defaults: {{account: APP}}
roles:
  app: {{publish: {{allow: ["app.>"]}}}}
users:
  alice: {{password: "{hash_password("pw")}", roles: [app]}}
"""
    )
    return load_policy(directory)


def _pipeline(policy: PolicySnapshot, guard: VersionGuard) -> Pipeline:
    runtime = Runtime(policy, ConfigModeIssuer(ISSUER, frozenset({"APP"})))
    return Pipeline(
        runtime=lambda: runtime,
        backends=[StaticBackend(PasswordVerifier(max_workers=1))],
        versions=guard,
    )


async def _login(pipeline: Pipeline, version: str) -> tuple[Reason, bytes | None]:
    server = ServerSimulator(version=version)
    payload, header = server.request(now=NOW, connect={"user": "alice", "pass": "pw"})
    opened = pipeline.open(payload, header, now=NOW)
    decision = await pipeline.decide(opened, now=NOW)
    return decision.reason, pipeline.answer(opened, decision, now=NOW)


def _count(metrics: Metrics, band: str, state: str) -> float:
    return metrics.server_versions.values[(band, state)]


async def test_by_default_an_unfixed_server_is_warned_about_once_and_still_answered(
    policy: PolicySnapshot,
) -> None:
    """warn, not deny: an upgrade is the operator's call; the log says which fix is missing."""
    metrics = Metrics()
    pipeline = _pipeline(policy, VersionGuard(ServerVersionSettings(), metrics=metrics))
    with capture_logs() as captured:
        for _ in range(3):
            reason, _ = await _login(pipeline, "2.12.5")
    assert reason is Reason.ALLOWED
    flagged = [line for line in captured if line["event"] == "server_version_flagged"]
    assert len(flagged) == 1
    assert flagged[0]["server_version"] == "2.12.5"
    assert flagged[0]["refused"] is False
    assert "queue-deny-bypass (fixed in 2.12.7)" in flagged[0]["detail"]
    assert _count(metrics, "2.12", "open") == 3
    assert _count(metrics, "2.15", "none") == 0


async def test_a_fixed_server_is_counted_and_not_logged(policy: PolicySnapshot) -> None:
    metrics = Metrics()
    pipeline = _pipeline(policy, VersionGuard(ServerVersionSettings(), metrics=metrics))
    with capture_logs() as captured:
        reason, _ = await _login(pipeline, "2.15.1")
    assert reason is Reason.ALLOWED
    assert not [line for line in captured if line["event"] == "server_version_flagged"]
    assert _count(metrics, "2.15", "none") == 1
    assert "callout_server_version_requests_total{" in metrics.render().decode()


async def test_deny_mode_answers_an_unfixed_server_with_a_signed_deny(
    policy: PolicySnapshot,
) -> None:
    """The login is refused before any backend work, and the server still gets an answer."""
    guard = VersionGuard(ServerVersionSettings(advisories=VersionAction.DENY))
    pipeline = _pipeline(policy, guard)
    reason, reply = await _login(pipeline, "2.11.14")
    assert reason is Reason.SERVER_VERSION_NOT_ACCEPTED
    assert reply is not None
    response = jwt.decode(reply.decode(), expected_type="authorization_response")
    assert response["nats"]["error"] == "not authorized"
    assert response["iss"] == ISSUER.public_key
    reason, _ = await _login(pipeline, "2.14.0")
    assert reason is Reason.ALLOWED


async def test_minimum_refuses_older_servers_whatever_the_advisory_mode(
    policy: PolicySnapshot,
) -> None:
    settings = ServerVersionSettings(advisories=VersionAction.IGNORE, minimum="2.14.0")
    pipeline = _pipeline(policy, VersionGuard(settings))
    with capture_logs() as captured:
        reason, _ = await _login(pipeline, "2.12.9")
    assert reason is Reason.SERVER_VERSION_NOT_ACCEPTED
    assert "below server_versions.minimum" in captured[-1]["detail"]
    reason, _ = await _login(pipeline, "2.14.0")
    assert reason is Reason.ALLOWED


async def test_an_unreadable_version_is_refused_in_deny_mode(policy: PolicySnapshot) -> None:
    """Fail closed: no version, no benefit of the doubt."""
    pipeline = _pipeline(policy, VersionGuard(ServerVersionSettings(advisories="deny")))
    reason, _ = await _login(pipeline, "")
    assert reason is Reason.SERVER_VERSION_NOT_ACCEPTED


async def test_ignore_mode_logs_nothing_but_still_counts(policy: PolicySnapshot) -> None:
    metrics = Metrics()
    settings = ServerVersionSettings(advisories=VersionAction.IGNORE)
    pipeline = _pipeline(policy, VersionGuard(settings, metrics=metrics))
    with capture_logs() as captured:
        reason, _ = await _login(pipeline, "2.10.4")
    assert reason is Reason.ALLOWED
    assert not captured
    assert _count(metrics, "2.10", "open") == 1


def test_the_verdict_table_is_bounded() -> None:
    """Many distinct versions: the table stops growing and says so once."""
    guard = VersionGuard(ServerVersionSettings(), max_versions=4)
    with capture_logs() as captured:
        for patch in range(10):
            guard.verdict(f"2.12.{patch}")
    assert guard.known_versions == 4
    full = [line for line in captured if line["event"] == "server_version_table_full"]
    assert len(full) == 1
    assert guard.verdict("2.12.9").refused is False


def test_minimum_must_be_a_version() -> None:
    with pytest.raises(ValueError, match="is not a version like"):
        ServerVersionSettings(minimum="latest")
