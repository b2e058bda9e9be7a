"""An attacker's checklist, one test each (SECURITY.md, threat model): what a client, a forged
request or a wrong key can try, and that each one fails closed."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import jwt as pyjwt  # PyJWT, for tokens an identity provider would mint
import pytest

from callout.backends.oidc import OidcBackend
from callout.backends.passwords import PasswordVerifier
from callout.backends.static import StaticBackend
from callout.backends.tokens import TokenBackend
from callout.credentials.passwords import hash_password
from callout.decision import Decision, DropReason, Identity, Reason
from callout.devserver.config_mode import ConfigModeSetup
from callout.devserver.processes import free_port
from callout.errors import ConfigError, RequestRejectedError
from callout.policy import PolicySnapshot
from callout.protocol import jwt
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import Pipeline, open_request
from callout.service.runtime import Runtime
from callout.service.wiring import load_runtime
from callout.settings import OidcBackendSettings
from callout.testing import ServerSimulator
from tests.integration.backends.idp import ISSUER, SigningKey, claims, mint
from tests.unit.backends.counting import CountingVerifier
from tests.unit.policy.helpers import NOW, request, snapshot

SENSOR = KeyPair.generate(KeyRole.USER)
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> PolicySnapshot:
    """Every template variable in a subject, a static user, an nkey user, groups, SYS."""
    return snapshot(
        tmp_path_factory.mktemp("attack-policy"),
        f"""
        roles:
          everything:
            publish:
              allow:
                - "u.{{{{user.name}}}}.>"
                - "a.{{{{user.attr.dept}}}}.>"
                - "c.{{{{client.name}}}}.>"
                - "s.{{{{server.name}}}}.>"
                - "k.{{{{server.cluster}}}}.>"
                - "t.{{{{server.tag.region}}}}.>"
          plain: {{publish: {{allow: ["plain.>"]}}}}
          root: {{publish: {{allow: ["$SYS.>"]}}, allow_system_account: true}}
        users:
          alice: {{password: "{hash_password(PASSWORD)}", roles: [plain]}}
          mallory: {{password: "{hash_password(PASSWORD)}", roles: [plain], account: SYS}}
          sensor: {{nkey: {SENSOR.public_key}, roles: [plain]}}
        groups:
          templated: {{roles: [everything]}}
          admins: {{roles: [root], account: SYS}}
        """,
    )


SAFE = {
    "principal": "eve",
    "dept": "eng",
    "client_name": "probe",
    "server": {"name": "n1", "cluster": "c1", "tags": ["region:eu"]},
}
INJECTIONS = ["a.>", ">", "*", "a b", "", "x\x00y", "tab\there"]


def _attempt(policy: PolicySnapshot, **changes: object) -> Decision:
    values: dict[str, object] = {**SAFE, **changes}
    identity = Identity(
        str(values["principal"]),
        "ldap",
        groups=("templated",),
        attributes={"dept": str(values["dept"])},
    )
    server = values["server"]
    assert isinstance(server, dict)
    return policy.authorize(
        identity,
        request(client_name=str(values["client_name"]) or "", server=server),
        NOW,
    )


def test_the_safe_baseline_of_the_template_attacks_is_allowed(policy: PolicySnapshot) -> None:
    """Guards the injection tests below: with harmless values the same login succeeds."""
    decision = _attempt(policy)
    assert decision.grant is not None
    assert "c.probe.>" in decision.grant.permissions.pub_allow


@pytest.mark.parametrize("value", INJECTIONS, ids=repr)
@pytest.mark.parametrize(
    "field",
    ["principal", "dept", "client_name", "server.name", "server.cluster", "server.tag"],
)
def test_an_unsafe_value_in_any_template_variable_denies_the_login(
    policy: PolicySnapshot, field: str, value: str
) -> None:
    """A value that could widen a subject (wildcards, separators, blanks) never fills one."""
    server = dict(SAFE["server"])  # type: ignore[call-overload]
    if field == "server.name":
        server["name"] = value
    elif field == "server.cluster":
        server["cluster"] = value
    elif field == "server.tag":
        server["tags"] = [f"region:{value}"]
    changes = {"server": server} if field.startswith("server.") else {field: value}
    if field == "client_name" and not value:
        changes = {"client_name": ""}
    decision = _attempt(policy, **changes)
    assert decision.grant is None
    assert decision.reason is Reason.UNSAFE_TEMPLATE_VALUE


def _drop_reason(payload: bytes, header: str | None = None, now: float = NOW) -> str:
    with pytest.raises(RequestRejectedError) as caught:
        open_request(payload, header, None, now=now)
    return caught.value.reason


def test_a_replayed_request_is_dead_after_its_expiry() -> None:
    """A captured request replayed later gets no answer at all."""
    payload, _ = ServerSimulator().request(now=NOW, connect={"user": "alice", "pass": PASSWORD})
    open_request(payload, None, None, now=NOW)  # fresh: accepted
    assert _drop_reason(payload, now=NOW + 3) == DropReason.EXPIRED


@pytest.mark.parametrize("role", [KeyRole.ACCOUNT, KeyRole.USER, KeyRole.OPERATOR])
def test_a_request_signed_by_a_non_server_key_is_dropped(role: KeyRole) -> None:
    """Only a server key may sign requests: an account or user key is not a server."""
    forger = ServerSimulator(key=KeyPair.generate(role))
    payload, _ = forger.request(now=NOW, connect={"user": "alice", "pass": PASSWORD})
    assert _drop_reason(payload) == DropReason.MALFORMED


def test_a_request_from_a_server_key_other_than_the_one_named_is_dropped() -> None:
    """iss must be the very server in server_id.id: one server cannot speak for another."""
    server = ServerSimulator()
    claims_ = server.claims(now=NOW)
    claims_["nats"]["server_id"]["id"] = KeyPair.generate(KeyRole.SERVER).public_key
    payload, _ = server.sign(claims_, now=NOW)
    assert _drop_reason(payload) == DropReason.WRONG_ISSUER


@pytest.mark.parametrize("wrong", [KeyRole.USER, KeyRole.OPERATOR, KeyRole.SERVER])
def test_a_signing_key_of_the_wrong_role_is_refused_at_start_up(
    tmp_path: Path, policy: PolicySnapshot, wrong: KeyRole
) -> None:
    """A seed that is not an account key could never produce a valid answer: refuse to start."""
    setup = ConfigModeSetup(tmp_path / "keys", free_port()).write()
    setup.issuer_seed_file.write_text(KeyPair.generate(wrong).seed)
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text("version: 1\ndefaults: {account: APP}\n")
    with pytest.raises(ConfigError, match="seed"):
        load_runtime(setup.settings(policies))


@pytest.fixture
def static() -> Iterator[StaticBackend]:
    verifier = PasswordVerifier(max_workers=2)
    yield StaticBackend(verifier)
    verifier.close()


def _sig(key: KeyPair, nonce: str) -> str:
    return base64.b64encode(key.sign(nonce.encode())).decode()


@pytest.mark.parametrize(
    ("sig", "reason"),
    [
        ("", Reason.NKEY_NOT_SIGNED),
        (_sig(KeyPair.generate(KeyRole.USER), "nonce-1"), Reason.BAD_NKEY_SIGNATURE),
        (_sig(SENSOR, "another-nonce"), Reason.BAD_NKEY_SIGNATURE),
        ("not base64 !!", Reason.BAD_NKEY_SIGNATURE),
    ],
    ids=["unsigned", "stranger's key", "replayed signature", "garbage"],
)
async def test_an_nkey_login_must_sign_this_connections_nonce(
    static: StaticBackend, policy: PolicySnapshot, sig: str, reason: Reason
) -> None:
    """nats-server does not check unknown nkeys' signatures: without our check, knowing a
    public key would be enough to log in."""
    attempt = request(nkey=SENSOR.public_key, sig=sig, nonce="nonce-1")
    decision = await static.authenticate(attempt, policy)
    assert isinstance(decision, Decision)
    assert decision.reason is reason
    good = request(nkey=SENSOR.public_key, sig=_sig(SENSOR, "nonce-1"), nonce="nonce-1")
    assert isinstance(await static.authenticate(good, policy), Identity)


async def test_tokens_of_the_wrong_kind_are_refused(tmp_path: Path, policy: PolicySnapshot) -> None:
    """A NATS user JWT, an HS256 token or an unsigned token offered as an OIDC bearer token is
    refused, and an opaque token of another prefix is nobody's credential."""
    idp = SigningKey.rsa("rsa-1")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [idp.jwk()]}))
    settings = OidcBackendSettings.model_validate(
        {
            "type": "oidc",
            "issuers": [
                {
                    "issuer": ISSUER,
                    "audience": ["nats"],
                    "jwks_file": jwks,
                    "allow_any_subject": "tests: every token here is an attack",
                }
            ],
        }
    )
    oidc = OidcBackend.from_settings(settings)
    try:
        account = KeyPair.generate(KeyRole.ACCOUNT)
        nats_user_jwt = jwt.encode(
            {"sub": SENSOR.public_key, "nats": {"type": "user", "version": 2}}, account, iat=NOW
        )
        payload = claims(aud="nats")
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
        hs256 = pyjwt.encode(payload, "shared-secret-guess-0123456789abcdef", algorithm="HS256")
        for token in (nats_user_jwt, f"{header}.{body}.", hs256):
            decision = await oidc.authenticate(request(token=token), policy)
            assert isinstance(decision, Decision), token[:20]
            assert decision.grant is None
        assert isinstance(
            await oidc.authenticate(request(token=mint(idp, payload)), policy), Identity
        )
    finally:
        oidc.close()
    verifier = PasswordVerifier(max_workers=1)
    try:
        tokens = TokenBackend(b"a-pepper-for-tests-only-0123456789abcdef", verifier, prefix="nac")
        assert await tokens.authenticate(request(token="ghp_" + "x" * 36), policy) is None
    finally:
        verifier.close()


async def test_the_system_account_only_when_the_policy_says_so(
    static: StaticBackend, policy: PolicySnapshot
) -> None:
    """A user whose entry names SYS without a role allowing it is refused; a group whose role
    says allow_system_account may land there."""
    runtime = Runtime(
        policy,
        ConfigModeIssuer(KeyPair.generate(KeyRole.ACCOUNT), frozenset({"APP", "SYS"})),
        system_account="SYS",
    )
    pipeline = Pipeline(runtime=lambda: runtime, backends=[static])
    server = ServerSimulator()
    payload, _ = server.request(now=NOW, connect={"user": "mallory", "pass": PASSWORD})
    decision = await pipeline.decide(pipeline.open(payload, None, now=NOW), now=NOW)
    assert decision.reason is Reason.ACCOUNT_NOT_ALLOWED
    admin = Identity("root-operator", "ldap", groups=("admins",))
    assert policy.authorize(admin, request(), NOW).grant is not None
    assert policy.allows_system_account(admin)
    assert not policy.allows_system_account(Identity("alice", "static"))


async def test_deny_paths_for_existing_and_unknown_users_cost_the_same_work(
    policy: PolicySnapshot,
) -> None:
    """Response time must not tell an attacker which user names exist: a wrong password for
    a real user and any password for a name that does not exist each cost exactly one
    argon2 verification (times are the benchmark's: python -m tests.benchmarks.denial_timing)."""
    verifier = CountingVerifier()
    static = StaticBackend(verifier)
    try:
        for user in ("alice", "nobody-here"):
            before = verifier.calls
            decision = await static.authenticate(request(user=user, password="wrong"), policy)
            assert isinstance(decision, Decision)
            assert decision.reason in (Reason.BAD_CREDENTIALS, Reason.UNKNOWN_USER)
            assert verifier.calls - before == 1, user
    finally:
        verifier.close()
