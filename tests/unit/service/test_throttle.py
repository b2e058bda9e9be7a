"""Failed-login throttling on plain values: windows, limits, what counts, memory bounds."""

from __future__ import annotations

from callout.service.decision import Reason
from callout.service.throttle import Throttle, principal_of
from tests.unit.policy.helpers import request


def _throttle(**overrides: int) -> Throttle:
    values = {"window": 60, "max_per_principal": 3, "max_per_ip": 5, **overrides}
    return Throttle(**values)  # type: ignore[arg-type]


def test_a_principal_is_blocked_at_the_limit_and_free_again_after_the_window() -> None:
    """A sliding window: old failures stop counting, nobody is locked out for good."""
    throttle = _throttle()
    for second in range(3):
        assert throttle.blocked("user:alice", "10.0.0.1", now=second) is None
        throttle.record("user:alice", "10.0.0.1", Reason.BAD_CREDENTIALS, now=second)
    assert throttle.blocked("user:alice", "10.0.0.2", now=10) == "principal"
    assert throttle.blocked("user:alice", "10.0.0.2", now=60.5) is None  # first failure aged out


def test_an_address_is_blocked_across_principals() -> None:
    """Spraying many user names from one address is caught by the address limit."""
    throttle = _throttle()
    for index in range(5):
        throttle.record(f"user:u{index}", "10.0.0.1", Reason.UNKNOWN_USER, now=index)
    assert throttle.blocked("user:other", "10.0.0.1", now=6) == "address"
    assert throttle.blocked("user:other", "10.0.0.9", now=6) is None


def test_our_own_faults_and_policy_denials_do_not_count() -> None:
    """A directory outage must not lock users out; only credential failures count."""
    throttle = _throttle(max_per_principal=1, max_per_ip=1)
    for reason in (Reason.BACKEND_UNAVAILABLE, Reason.INTERNAL_ERROR, Reason.SOURCE_NOT_ALLOWED):
        throttle.record("user:alice", "10.0.0.1", reason, now=1)
    assert throttle.blocked("user:alice", "10.0.0.1", now=2) is None


def test_a_success_clears_the_principal_but_not_the_address() -> None:
    """Many clients can share one address; one user's success clears only that user."""
    throttle = _throttle(max_per_principal=2, max_per_ip=3)
    throttle.record("user:alice", "10.0.0.1", Reason.BAD_CREDENTIALS, now=1)
    throttle.record("user:bob", "10.0.0.1", Reason.BAD_CREDENTIALS, now=1)
    throttle.record("user:alice", "10.0.0.1", Reason.ALLOWED, now=2)
    throttle.record("user:alice", "10.0.0.1", Reason.BAD_CREDENTIALS, now=3)
    assert throttle.blocked("user:alice", "", now=4) is None
    assert throttle.blocked("", "10.0.0.1", now=4) == "address"


def test_memory_is_bounded_by_forgetting_the_oldest_keys() -> None:
    """A flood of random user names must not grow memory without bound."""
    throttle = Throttle(window=60, max_per_principal=3, max_per_ip=10**6, max_tracked=100)
    for index in range(1000):
        throttle.record(f"user:u{index}", "", Reason.UNKNOWN_USER, now=1)
    assert throttle.tracked == 100


def test_the_principal_key_of_a_token_is_a_digest_never_the_token() -> None:
    """The throttle's memory must not become a store of secrets."""
    token = "cot_abc_" + "s3cr3t" * 6
    login = request()
    login = type(login)(**{**_fields(login), "connect": type(login.connect)(auth_token=token)})
    key, shown = principal_of(login)
    assert key.startswith("token:")
    assert token not in key
    assert shown == "(token)"
    assert principal_of(request(user="alice", password="pw")) == ("user:alice", "alice")


def _fields(value: object) -> dict[str, object]:
    return {name: getattr(value, name) for name in value.__slots__}  # type: ignore[attr-defined]
