"""Policy unit tests: YAML files of logins and what the policy must decide for them.

A test file (``version: 1``, ``tests: [...]``) lists cases. Each case simulates a client with
``login`` (credentials checked by the real backends: a password, token, nkey seed or a
client certificate file; with the connection type and MQTT client id the server would report)
or states an already verified ``identity`` (no credentials: tests of group mappings and
permissions), and ``expect``s a
decision, optionally a reason, an account, a JWT lifetime, and subjects that must be allowed
or denied for publish and subscribe. Files are read with the policy loader's YAML rules and
every mistake is reported as file:line; a ``cert_file`` is read (relative to the test file)
when the file is loaded. Running is pure: no NATS, no network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from callout.backends.base import Backend
from callout.decision import BackendName, Identity, Permissions, Reason
from callout.errors import PolicyIssue
from callout.policy.fields import ConnectionType, DurationWithUnit
from callout.policy.snapshot import PolicySnapshot
from callout.policy.subjects import subject_verdict
from callout.policy.yamldoc import Document, parse
from callout.protocol.requests import client_kind
from callout.tools.certlogin import read_chain, with_certificate
from callout.tools.diff import duration_text
from callout.tools.explain import GivenIdentity, Login, build_request, simulate_login
from callout.tools.explain import parse_time as _parse_time

_SUFFIXES = (".yaml", ".yml")
_FRIENDLY = {"extra_forbidden": "unknown key", "missing": "required key is missing"}
Text = Annotated[str, StringConstraints(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LoginSpec(_Model):
    """A simulated client; credentials are test credentials, checked by the backends."""

    user: str = ""
    password: str = Field("", repr=False)
    token: str = Field("", repr=False)
    nkey_seed: str = Field("", repr=False, description="SU... seed of a test nkey user")
    host: str = "127.0.0.1"
    connection_type: ConnectionType = "STANDARD"
    client_name: str = ""
    mqtt_client_id: str = Field("", description="the MQTT client id (MQTT connection types)")
    cert_file: str = Field(
        "", description="PEM chain the client presents (leaf first), relative to this file"
    )
    server_name: str = "test"
    server_cluster: str = ""
    server_tags: list[str] = Field(default_factory=list)
    at: str | None = Field(None, description="ISO 8601 time of the login (default: now)")

    @model_validator(mode="after")
    def _mqtt_id_needs_mqtt(self) -> LoginSpec:
        if self.mqtt_client_id and client_kind(self.connection_type)["type"] != "mqtt":
            raise ValueError("mqtt_client_id needs connection_type MQTT or MQTT_WS")
        return self


class IdentitySpec(_Model):
    """An identity taken as verified: what a backend would hand the policy."""

    principal: Text
    backend: Text = BackendName.STATIC.value
    groups: list[str] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)


class SubjectExpectations(_Model):
    allow: list[Text] = Field(default_factory=list)
    deny: list[Text] = Field(default_factory=list)


class Expectation(_Model):
    decision: Literal["allow", "deny"]
    reason: str | None = Field(None, description="a deny reason code, e.g. bad_credentials")
    account: str | None = None
    expiry: DurationWithUnit | None = Field(None, description="the user JWT's lifetime")
    publish: SubjectExpectations | None = None
    subscribe: SubjectExpectations | None = None

    @field_validator("reason")
    @classmethod
    def _known_reason(cls, value: str | None) -> str | None:
        known = [reason.value for reason in Reason]
        if value is not None and value not in known:
            raise ValueError(f"unknown reason {value!r}; one of {', '.join(known)}")
        return value


class Case(_Model):
    name: Text
    login: LoginSpec | None = None
    identity: IdentitySpec | None = None
    expect: Expectation


class SuiteFile(_Model):
    version: Literal[1]
    tests: list[Case] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Located:
    case: Case
    file: str
    line: int | None
    chain: tuple[str, ...] = ()  # the certificates of the login's cert_file, read at load

    @property
    def where(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


@dataclass(slots=True)
class Outcome:
    """One case's result: ``failures`` lists each expectation that did not hold."""

    test: Located
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def suite_files(paths: Sequence[Path]) -> list[Path]:
    """The ``*.yaml``/``*.yml`` files among ``paths`` (directories are not recursed)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES))
        else:
            out.append(path)
    return out


def load_tests(files: Sequence[Path]) -> tuple[list[Located], list[PolicyIssue]]:
    """Every case of ``files``, or the problems (file:line) that stop them from running."""
    cases: list[Located] = []
    issues: list[PolicyIssue] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(PolicyIssue(str(path), None, "", f"cannot read: {exc}"))
            continue
        doc, problems = parse(str(path), text)
        issues.extend(problems)
        if doc is not None:
            cases.extend(_cases(doc, issues))
    return cases, issues


def _cases(doc: Document, issues: list[PolicyIssue]) -> list[Located]:
    try:
        model = SuiteFile.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors(include_input=False):
            path = tuple(part for part in error["loc"] if part != "[key]")
            message = _FRIENDLY.get(error["type"], str(error["msg"]))
            issues.append(doc.issue(path, message.removeprefix("Value error, ")))
        return []
    out = []
    for index, case in enumerate(model.tests):
        if (case.login is None) == (case.identity is None):
            issues.append(
                doc.issue(("tests", index), "a test needs exactly one of login, identity")
            )
            continue
        chain: tuple[str, ...] = ()
        if case.login is not None and case.login.cert_file:
            cert_file = Path(doc.file).parent / case.login.cert_file
            try:
                chain = read_chain(cert_file)
            except ValueError as error:
                where = ("tests", index, "login", "cert_file")
                issues.append(doc.issue(where, f"{cert_file}: {error}"))
                continue
        out.append(Located(case, doc.file, doc.line(("tests", index)), chain))
    return out


def _login(spec: LoginSpec) -> Login:
    return Login(
        user=spec.user,
        password=spec.password,
        token=spec.token,
        nkey_seed=spec.nkey_seed,
        host=spec.host,
        connection_type=spec.connection_type,
        client_name=spec.client_name,
        mqtt_client_id=spec.mqtt_client_id,
        server_name=spec.server_name,
        server_cluster=spec.server_cluster,
        server_tags=tuple(spec.server_tags),
    )


async def run_case(
    test: Located,
    snapshot: PolicySnapshot,
    backends: Sequence[Backend],
    *,
    now: float,
    accounts: frozenset[str] | None = None,
    system_account: str | None = None,
) -> Outcome:
    """Decide the case's login and compare with what it expects."""
    case = test.case
    spec = case.login or LoginSpec()
    at = _parse_time(spec.at) if spec.at else now
    request = build_request(_login(spec), int(at))
    if test.chain:
        request = with_certificate(request, test.chain)
    chain = backends
    if case.identity is not None:
        given = case.identity
        identity = Identity(
            principal=given.principal,
            backend=given.backend,
            groups=tuple(given.groups),
            attributes=MappingProxyType(dict(given.attributes)),
        )
        chain = [GivenIdentity(identity)]
    decision, _ = await simulate_login(
        snapshot, request, chain, now=at, accounts=accounts, system_account=system_account
    )
    outcome = Outcome(test)
    expect = case.expect
    got = "allow" if decision.allowed else "deny"
    if got != expect.decision:
        why = f" ({decision.reason.value}{': ' + decision.detail if decision.detail else ''})"
        outcome.failures.append(f"decision: expected {expect.decision}, got {got}{why}")
        return outcome
    if expect.reason is not None and decision.reason.value != expect.reason:
        outcome.failures.append(f"reason: expected {expect.reason}, got {decision.reason.value}")
    grant = decision.grant
    if grant is None:
        return outcome
    if expect.account is not None and grant.account != expect.account:
        outcome.failures.append(f"account: expected {expect.account!r}, got {grant.account!r}")
    if expect.expiry is not None:
        lifetime, seconds = grant.expires - int(at), int(expect.expiry.total_seconds())
        if lifetime != seconds:
            expected, actual = duration_text(seconds), duration_text(lifetime)
            outcome.failures.append(f"expiry: expected {expected}, got {actual}")
    outcome.failures += _subject_failures(expect, grant.permissions)
    return outcome


def _subject_failures(expect: Expectation, permissions: Permissions) -> list[str]:
    failures: list[str] = []
    sides = (
        ("publish", expect.publish, permissions.pub_allow, permissions.pub_deny),
        ("subscribe", expect.subscribe, permissions.sub_allow, permissions.sub_deny),
    )
    for side, wanted, allow, deny in sides:
        if wanted is None:
            continue
        checks = [(s, True) for s in wanted.allow] + [(s, False) for s in wanted.deny]
        for subject, should in checks:
            verdict = subject_verdict(allow, deny, subject)
            if verdict.allowed == should:
                continue
            expected = "allowed" if should else "denied"
            if verdict.allowed:
                because = f"allowed by {verdict.entry!r}"
            elif verdict.entry:
                because = f"denied by {verdict.entry!r}"
            else:
                because = "no allow entry matches"
            failures.append(f"{side} {subject!r}: expected {expected}, {because}")
    return failures


def run(
    tests: Sequence[Located],
    snapshot: PolicySnapshot,
    backends: Sequence[Backend],
    *,
    now: float,
    accounts: frozenset[str] | None = None,
    system_account: str | None = None,
) -> list[Outcome]:
    """Run every case (in order) on one event loop."""

    async def all_cases() -> list[Outcome]:
        return [
            await run_case(
                test, snapshot, backends, now=now, accounts=accounts, system_account=system_account
            )
            for test in tests
        ]

    return asyncio.run(all_cases())
