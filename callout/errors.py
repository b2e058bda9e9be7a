"""The exception tree of the service.

A denial is a value (`callout.decision.Decision`); these exceptions are faults::

    CalloutError
    ├── ProtocolError            bad bytes on the wire (keys, JWTs, boxes, claims)
    │   ├── InvalidKeyError      an nkey or seed that does not decode, or has the wrong role
    │   ├── InvalidTokenError    a JWT that is malformed, badly signed, or of the wrong kind
    │   │   └── BadSignatureError  a well-formed JWT whose signature does not verify
    │   └── DecryptionError      an xkey box that does not open
    ├── RequestRejectedError     an authorization request the service must not answer
    ├── ConfigError              settings or key files that cannot work; the service will not start
    ├── UsageError               a command line that cannot work as given (exit code 2)
    ├── PolicyError              a policy tree that does not load; the last good one stays active
    └── BackendUnavailableError  a backend that cannot answer now (directory down, timeout)

Messages never contain secrets: no seeds, passwords, tokens, JWTs or signatures.
"""

from __future__ import annotations

from dataclasses import dataclass

from callout.decision import DropReason


class CalloutError(Exception):
    """Base class of every error this package raises on purpose."""


class ProtocolError(CalloutError):
    """Bytes on the wire that do not follow the NATS protocol."""


class InvalidKeyError(ProtocolError):
    """An nkey public key or seed that does not decode, or has an unexpected role."""


class InvalidTokenError(ProtocolError):
    """A JWT that is malformed, badly signed, expired, or of the wrong kind."""


class BadSignatureError(InvalidTokenError):
    """A well-formed JWT whose Ed25519 signature does not verify with its ``iss``."""


class DecryptionError(ProtocolError):
    """An xkey (`xkv1`) box that is malformed or does not open with our key."""


class RequestRejectedError(CalloutError):
    """An authorization request that gets no reply, and why (`DropReason`)."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ConfigError(CalloutError):
    """Settings, keys or secret files that cannot work."""


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem in a policy file, located as precisely as the file allows."""

    file: str
    line: int | None
    path: str
    message: str
    code: str = ""  # lint warnings: the code an `acknowledge:` entry names

    def render(self, level: str = "") -> str:
        """``file:line: path: level: message [code]``, the shape editors and CI annotate;
        ``level`` is "" for an error, else "warning", "note" or "acknowledged"."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        path = f" {self.path}:" if self.path else ""
        label = f" {level}:" if level else ""
        code = f" [{self.code}]" if self.code else ""
        return f"{where}:{path}{label} {self.message}{code}"

    def __str__(self) -> str:
        return self.render()


class UsageError(CalloutError):
    """Command-line arguments that cannot work together or miss something (exit code 2)."""


class PolicyError(CalloutError):
    """A policy tree that does not load; carries every issue found."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        super().__init__("\n".join(str(issue) for issue in issues))
        self.issues = issues


class BackendUnavailableError(CalloutError):
    """A backend that cannot give an answer now; the login fails closed."""

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(f"{backend}: {detail}")
        self.backend = backend
        self.detail = detail
