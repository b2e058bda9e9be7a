"""Policy test files: YAML files of logins and what the policy must decide for them, read into
cases (`load_tests`) with every mistake reported as file:line (the runner is `policytest`).

A test file (``version: 1``, ``tests: [...]``) lists cases. Each case simulates a client with
``login`` (credentials checked by the real backends: a password, token, nkey seed or a
client certificate file; with the connection type and MQTT client id the server would report)
or states an already verified ``identity`` (no credentials: tests of group mappings and
permissions), and ``expect``s a decision, optionally a reason, an account, a JWT lifetime, and
subjects that must be allowed or denied for publish and subscribe. Files are read with the
policy loader's YAML rules; a ``cert_file`` is read (relative to the test file) when the file
is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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

from callout.decision import BackendName, Reason
from callout.errors import PolicyIssue
from callout.policy.fields import ConnectionType, DurationWithUnit
from callout.policy.yamldoc import Document, parse
from callout.protocol.requests import client_kind
from callout.tools.certlogin import read_chain

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
