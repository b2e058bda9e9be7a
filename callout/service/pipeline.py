"""The request pipeline, one fixed sequence:

    open (decrypt) → decode + verify → validate → authenticate → authorize → sign → seal

`open_request` is pure and synchronous; `Pipeline.decide` awaits the backends; `Pipeline.answer`
builds the bytes to publish (or None for silence). No sockets here: the worker owns NATS.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from callout.backends.base import LATER, Backend, authenticate_now, lane_of
from callout.decision import Decision, DropReason, Identity, Lane, Reason
from callout.errors import (
    BackendUnavailableError,
    BadSignatureError,
    DecryptionError,
    InvalidKeyError,
    InvalidTokenError,
    RequestRejectedError,
)
from callout.policy.snapshot import PolicySnapshot
from callout.policy.templates import is_safe
from callout.protocol import jwt, xkey
from callout.protocol.claims import REQUEST_AUDIENCE, AuthRequest
from callout.protocol.nkeys import CurveKeyPair, KeyRole, is_public_key
from callout.service.issuer import AccountPlacement
from callout.service.runtime import Runtime
from callout.service.versionguard import VersionGuard
from callout.settings import DenyMode

_JWT_START = b"eyJ"


@dataclass(frozen=True, slots=True)
class OpenedRequest:
    """A verified request, the server xkey to seal the answer to (when it came sealed), and
    the `Runtime` it is decided and answered with."""

    request: AuthRequest
    server_xkey: str | None
    runtime: Runtime


def _reject(reason: DropReason, detail: str) -> RequestRejectedError:
    return RequestRejectedError(reason, detail)


def open_request(
    payload: bytes,
    header_xkey: str | None,
    own_xkey: CurveKeyPair | None,
    *,
    now: float,
    leeway: float = 0.0,
) -> tuple[AuthRequest, str | None]:
    """Decrypt, decode, verify and validate one request (docs/protocol.md#checks); raises
    `RequestRejectedError` with a `DropReason` value for anything that must not be answered."""
    sealed = header_xkey is not None or not payload.startswith(_JWT_START)
    if sealed != (own_xkey is not None):
        detail = (
            "sealed request, no xkey configured" if sealed else "plaintext request, xkey configured"
        )
        raise _reject(DropReason.ENCRYPTION_MISMATCH, detail)
    if own_xkey is not None:
        if not header_xkey:
            raise _reject(DropReason.MALFORMED, "sealed request without a Nats-Server-Xkey header")
        try:
            payload = xkey.open_box(payload, own_xkey, header_xkey)
        except InvalidKeyError as error:
            raise _reject(DropReason.BAD_XKEY, f"Nats-Server-Xkey header: {error}") from None
        except DecryptionError as error:
            raise _reject(DropReason.ENCRYPTION_MISMATCH, str(error)) from None
    try:
        claims = jwt.decode(payload.decode("ascii"), expected_type="authorization_request")
        request = AuthRequest.from_claims(claims)
    except BadSignatureError as error:
        raise _reject(DropReason.BAD_SIGNATURE, str(error)) from None
    except (InvalidTokenError, UnicodeDecodeError) as error:
        raise _reject(DropReason.MALFORMED, str(error)) from None
    _validate(request, header_xkey, now=now, leeway=leeway)
    return request, header_xkey


def _validate(request: AuthRequest, header_xkey: str | None, *, now: float, leeway: float) -> None:
    if not is_public_key(request.issuer, KeyRole.SERVER) or request.issuer != request.server.id:
        raise _reject(DropReason.WRONG_ISSUER, "iss is not the server's key in server_id.id")
    if request.audience != REQUEST_AUDIENCE:
        raise _reject(DropReason.MALFORMED, "aud is not nats-authorization-request")
    if request.expires <= 0:
        raise _reject(DropReason.MALFORMED, "exp is missing")
    if now > request.expires + leeway:
        raise _reject(DropReason.EXPIRED, "request expired before it was worked on")
    if not is_public_key(request.user_nkey, KeyRole.USER):
        raise _reject(DropReason.MALFORMED, "user_nkey is not a user public key")
    if header_xkey is not None and request.server.xkey != header_xkey:
        raise _reject(DropReason.ENCRYPTION_MISMATCH, "server_id.xkey differs from the header")


class Pipeline:
    """Decides and answers verified requests with the configured backends and issuer."""

    def __init__(
        self,
        *,
        runtime: Callable[[], Runtime],
        backends: Sequence[Backend],
        deny_mode: DenyMode = DenyMode.REPLY,
        error_message: str = "not authorized",
        leeway: float = 0.0,
        versions: VersionGuard | None = None,
    ) -> None:
        self.runtime = runtime
        self.backends = tuple(backends)
        self.deny_mode = deny_mode
        self.error_message = error_message
        self.leeway = leeway
        self.versions = versions

    def open(self, payload: bytes, header_xkey: str | None, *, now: float) -> OpenedRequest:
        """Verify one request against the current `Runtime`, which stays with it."""
        runtime = self.runtime()
        request, server_xkey = open_request(
            payload, header_xkey, runtime.xkey, now=now, leeway=self.leeway
        )
        if self.versions is not None:
            self.versions.observe(request)
        return OpenedRequest(request, server_xkey, runtime)

    def lane(self, opened: OpenedRequest) -> Lane:
        """How costly deciding ``opened`` is, as the backend chain tells (`lane_of`)."""
        return lane_of(self.backends, opened.request, opened.runtime.policy)

    async def decide(self, opened: OpenedRequest, *, now: float) -> Decision:
        """The decision for ``opened`` with its `Runtime` (see `authorize_request`)."""
        runtime = opened.runtime
        if self.versions is not None and (refused := self.versions.refusal(opened.request)):
            return refused  # the server's version is not accepted: no backend work
        return await authorize_request(
            opened.request,
            runtime.policy,
            self.backends,
            runtime.issuer,
            system_accounts=(runtime.system_account,),
            now=now,
        )

    def decide_now(self, opened: OpenedRequest, *, now: float) -> Decision | None:
        """The decision `decide` would reach, when every backend it asks can answer without
        awaiting (`authenticate_now`); None when one cannot (then nothing was counted)."""
        runtime = opened.runtime
        policy = runtime.policy
        try:
            for backend in self.backends:
                result = authenticate_now(backend, opened.request, policy)
                if result is LATER:
                    return None
                if result is not None:
                    break
            else:
                return Decision.deny(Reason.NO_CREDENTIALS, detail=_unrecognised(opened.request))
        except BackendUnavailableError as error:
            return _unavailable(error)
        return conclude(
            result,
            opened.request,
            policy,
            runtime.issuer,
            system_accounts=(runtime.system_account,),
            now=now,
        )

    def answer(self, opened: OpenedRequest, decision: Decision, *, now: int) -> bytes | None:
        """The payload to publish for ``decision``, sealed when the request was; None = silence."""
        request, issuer, own_xkey = opened.request, opened.runtime.issuer, opened.runtime.xkey
        if decision.grant is not None:
            token = issuer.grant(request, decision.grant, now=now)
        elif self.deny_mode is DenyMode.DROP:
            return None
        else:
            token = issuer.refuse(request, self.error_message, now=now)
        data = token.encode("ascii")
        if opened.server_xkey is not None and own_xkey is not None:
            return xkey.seal(data, own_xkey, opened.server_xkey)
        return data


async def authorize_request(
    request: AuthRequest,
    snapshot: PolicySnapshot,
    backends: Sequence[Backend],
    placement: AccountPlacement,
    *,
    system_accounts: Collection[str | None] = (),
    now: float,
) -> Decision:
    """Authenticate with the first backend that recognises the credential, authorize with
    the policy, then check the account is one ``placement`` may place into (and, for a
    system account, that the policy allows it). Needs no key: nothing is signed here.

    A backend fault (`BackendUnavailableError`) fails closed with its own reason.
    """
    try:
        identity = await _authenticate(backends, request, snapshot)
    except BackendUnavailableError as error:
        return _unavailable(error)
    return conclude(
        identity, request, snapshot, placement, system_accounts=system_accounts, now=now
    )


def _unavailable(error: BackendUnavailableError) -> Decision:
    return Decision.deny(Reason.BACKEND_UNAVAILABLE, backend=error.backend, detail=error.detail)


def conclude(
    identity: Identity | Decision,
    request: AuthRequest,
    snapshot: PolicySnapshot,
    placement: AccountPlacement,
    *,
    system_accounts: Collection[str | None] = (),
    now: float,
) -> Decision:
    """The decision for an authenticated ``identity`` (a backend's deny stands as it is):
    authorize with the policy, then check the account is one ``placement`` may place into
    (and, for a system account, that the policy allows it). Synchronous: both drivers of
    the worker (inline and in a task) end here."""
    if isinstance(identity, Decision):
        return identity
    decision = snapshot.authorize(identity, request, now)
    if decision.grant is None:
        return decision
    account = decision.grant.account
    if not placement.can_place(account):
        return Decision.deny(
            Reason.ACCOUNT_NOT_ALLOWED,
            backend=decision.backend,
            principal=decision.principal,
            detail=f"account {account!r} is not configured",
        )
    if placement.by_template(account) and not is_safe(decision.grant.name):
        # A scoped key's template may hold {{name()}}: a name such as "a.>" would widen it.
        return Decision.deny(
            Reason.UNSAFE_TEMPLATE_VALUE,
            backend=decision.backend,
            principal=decision.principal,
            detail=f"account {account!r} signs by a scoped key's template, which may use the"
            " user's name; this name is not safe inside a subject",
        )
    if account in system_accounts and not snapshot.allows_system_account(identity):
        return Decision.deny(
            Reason.ACCOUNT_NOT_ALLOWED,
            backend=decision.backend,
            principal=decision.principal,
            detail="the system account needs allow_system_account in the policy",
        )
    return decision


async def _authenticate(
    backends: Sequence[Backend], request: AuthRequest, snapshot: PolicySnapshot
) -> Identity | Decision:
    for backend in backends:
        result = await backend.authenticate(request, snapshot)
        if result is not None:
            return result
    return Decision.deny(Reason.NO_CREDENTIALS, detail=_unrecognised(request))


def _unrecognised(request: AuthRequest) -> str:
    """Why no backend took the login: what the client sent (names only, never values)."""
    connect = request.connect
    sent = [
        name
        for name, value in (
            ("user", connect.user),
            ("password", connect.password),
            ("token", connect.auth_token),
            ("nkey", connect.nkey),
            ("jwt", connect.jwt),
            ("certificate", request.tls and (request.tls.verified_chains or request.tls.certs)),
        )
        if value
    ]
    if sent:
        return f"no configured backend accepts this login (sent: {', '.join(sent)})"
    if not request.client.nonce:
        return (
            "no credentials sent, and the server sent no nonce: nkey clients send their key "
            "only to sign a nonce, which nats-server sends when it knows an nkey user (see "
            "callout nats-config)"
        )
    return "no credentials sent"
