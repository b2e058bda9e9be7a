"""`OperatorModeSetup`: a whole operator-mode trust chain for a local nats-server, from scratch.

Mints what ``nsc`` would (operator, SYS, the callout account with its ``authorization`` member,
target accounts with signing keys, optionally scoped ones), writes the seed and creds files the
service and clients need, and a server config with a memory resolver preloaded with the account
JWTs. Used by the integration suite and `callout dev --operator`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callout.decision import Permissions
from callout.protocol import jwt
from callout.protocol.accounts import (
    ANY_ACCOUNT,
    DENY_ALL,
    Authorization,
    ScopedKey,
    account_claims,
    operator_claims,
    plain_user_claims,
)
from callout.protocol.creds import format_creds
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole
from callout.secretfiles import write_secret
from callout.settings import Settings, load_settings

CALLOUT_ACCOUNT = "AUTH"
SYSTEM_ACCOUNT = "SYS"
SCOPE_TEMPLATE = Permissions(
    pub_allow=("scoped.>", "$SYS.REQ.USER.INFO"), sub_allow=("scoped.>", "_INBOX.>")
)


def _account_key() -> KeyPair:
    return KeyPair.generate(KeyRole.ACCOUNT)


@dataclass
class _Account:
    """One account of the chain: its key, the signing keys its JWT lists, the active one."""

    name: str
    key: KeyPair = field(default_factory=_account_key)
    signing: list[KeyPair] = field(default_factory=list)
    active: KeyPair | None = None  # None = the account key itself signs
    scoped: bool = False

    @property
    def signer(self) -> KeyPair:
        return self.active or self.key


@dataclass
class OperatorModeSetup:
    """Keys, JWTs, creds and a server config for an operator-mode callout on 127.0.0.1.

    ``signing_keys``: target accounts and the callout account sign with a signing key (user
    JWTs then carry ``issuer_account``); otherwise with the account keys themselves.
    ``scoped_accounts``: extra target accounts whose only signing key is scoped (template
    `SCOPE_TEMPLATE`). ``default_sentinel``: clients without a JWT get a bearer sentinel from
    the server, so plain user/password clients work; otherwise clients need ``sentinel.creds``.
    ``any_account``: ``allowed_accounts: ["*"]`` instead of the list of target accounts.
    ``system_target``: the system account is a target too (allowed, with a seed file), so that
    the service's own guard is what keeps users out of it. ``stable_user_key``: the callout
    account's own users (the service, sentinels) are signed by its account key, so that its
    response signing key can be rotated away without revoking them. ``jetstream``: the server
    runs JetStream (in ``jetstream_domain`` if set) and the target accounts may use it.
    """

    directory: Path
    port: int
    target_accounts: tuple[str, ...] = ("APP",)
    scoped_accounts: tuple[str, ...] = ()
    signing_keys: bool = False
    encrypted: bool = False
    default_sentinel: bool = False
    any_account: bool = False
    system_target: bool = False
    stable_user_key: bool = False
    jetstream: bool = False  # JetStream on, enabled (unlimited) in the target accounts
    jetstream_domain: str | None = None  # with jetstream: the server's JetStream domain
    timeout: float = 2.0
    operator: KeyPair = field(default_factory=lambda: KeyPair.generate(KeyRole.OPERATOR))
    xkey: CurveKeyPair = field(default_factory=CurveKeyPair.generate)
    service_user: KeyPair = field(default_factory=lambda: KeyPair.generate(KeyRole.USER))
    sentinel: KeyPair = field(default_factory=lambda: KeyPair.generate(KeyRole.USER))
    system_user: KeyPair = field(default_factory=lambda: KeyPair.generate(KeyRole.USER))
    accounts: dict[str, _Account] = field(init=False)

    def __post_init__(self) -> None:
        names = (SYSTEM_ACCOUNT, CALLOUT_ACCOUNT, *self.target_accounts, *self.scoped_accounts)
        if len(set(names)) != len(names):
            raise ValueError(f"account names must be unique: {names}")
        self.accounts = {name: _Account(name) for name in names}
        signed = (CALLOUT_ACCOUNT, *self.target_accounts) if self.signing_keys else ()
        for name in signed:
            self.add_signing_key(name, activate=True)
        for name in self.scoped_accounts:
            account = self.accounts[name]
            account.active = KeyPair.generate(KeyRole.ACCOUNT)
            account.signing.append(account.active)
            account.scoped = True

    # --- keys and JWTs -------------------------------------------------------------------

    def public_key(self, name: str) -> str:
        return self.accounts[name].key.public_key

    def add_signing_key(self, name: str, *, activate: bool = False) -> KeyPair:
        """A new plain signing key on account ``name`` (push the account JWT to publish it)."""
        account = self.accounts[name]
        key = KeyPair.generate(KeyRole.ACCOUNT)
        account.signing.append(key)
        if activate:
            account.active = key
        return key

    def remove_signing_key(self, name: str, key: str) -> None:
        account = self.accounts[name]
        account.signing = [k for k in account.signing if k.public_key != key]

    def operator_jwt(self) -> str:
        claims = operator_claims(
            self.operator.public_key, name="callout-test", system_account=self.public_key("SYS")
        )
        return jwt.encode(claims, self.operator, iat=0)

    def account_jwt(self, name: str, *, iat: int = 1) -> str:
        """The account's JWT as the operator signs it (a later ``iat`` replaces an earlier)."""
        account = self.accounts[name]
        keys: list[str | ScopedKey] = [
            ScopedKey(k.public_key, "scoped", SCOPE_TEMPLATE, "test scope")
            if account.scoped
            else k.public_key
            for k in account.signing
        ]
        authorization = self._authorization() if name == CALLOUT_ACCOUNT else None
        claims = account_claims(
            account.key.public_key,
            name=name,
            signing_keys=keys,
            authorization=authorization,
            jetstream=self.jetstream and name in self.target_accounts,
        )
        return jwt.encode(claims, self.operator, iat=iat)

    @property
    def targets(self) -> tuple[str, ...]:
        """The names of the accounts the service may place users into."""
        system = (SYSTEM_ACCOUNT,) if self.system_target else ()
        return (*self.target_accounts, *self.scoped_accounts, *system)

    def _authorization(self) -> Authorization:
        targets = self.targets
        allowed = (ANY_ACCOUNT,) if self.any_account else tuple(map(self.public_key, targets))
        return Authorization(
            auth_users=(self.service_user.public_key,),
            allowed_accounts=allowed,
            xkey=self.xkey.public_key if self.encrypted else "",
        )

    def user_jwt(self, user: KeyPair, account_name: str, **options: Any) -> str:
        """A plain user JWT in ``account_name``, signed by its active key."""
        account = self.accounts[account_name]
        stable = self.stable_user_key and account_name == CALLOUT_ACCOUNT
        signer = account.key if stable else account.signer
        issuer_account = account.key.public_key if signer is not account.key else ""
        claims = plain_user_claims(
            user.public_key, issuer_account=issuer_account, **{"name": "user", **options}
        )
        return jwt.encode(claims, signer, iat=1)

    def sentinel_jwt(self, *, bearer: bool = False) -> str:
        name = "bearer-sentinel" if bearer else "sentinel"
        return self.user_jwt(
            self.sentinel, CALLOUT_ACCOUNT, name=name, permissions=DENY_ALL, bearer=bearer
        )

    # --- files ---------------------------------------------------------------------------

    def seed_file(self, name: str) -> Path:
        """The file holding the active signing seed of account ``name``."""
        return self.directory / f"{name}.nk"

    @property
    def xkey_seed_file(self) -> Path:
        return self.directory / "xkey.nk"

    @property
    def service_creds_file(self) -> Path:
        return self.directory / "service.creds"

    @property
    def sentinel_creds_file(self) -> Path:
        return self.directory / "sentinel.creds"

    @property
    def system_creds_file(self) -> Path:
        return self.directory / "sys.creds"

    @property
    def config_file(self) -> Path:
        return self.directory / "nats-server.conf"

    def write(self) -> OperatorModeSetup:
        """Write seeds and creds (mode 0600) and the server config."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in (CALLOUT_ACCOUNT, *self.targets):
            write_secret(self.seed_file(name), self.accounts[name].signer.seed)
        if self.encrypted:
            write_secret(self.xkey_seed_file, self.xkey.seed)
        service = self.user_jwt(self.service_user, CALLOUT_ACCOUNT, name="auth-service")
        write_secret(self.service_creds_file, format_creds(service, self.service_user.seed))
        write_secret(
            self.sentinel_creds_file, format_creds(self.sentinel_jwt(), self.sentinel.seed)
        )
        system = self.user_jwt(self.system_user, SYSTEM_ACCOUNT, name="sys")
        write_secret(self.system_creds_file, format_creds(system, self.system_user.seed))
        self.config_file.write_text(self.server_config(), encoding="utf-8")
        return self

    def server_config(self) -> str:
        lines = [
            f"listen: 127.0.0.1:{self.port}",
            "server_name: callout_operator",
            f"operator: {self.operator_jwt()}",
            f"system_account: {self.public_key(SYSTEM_ACCOUNT)}",
            "resolver: MEM",
            "resolver_preload: {",
            *(f"  {a.key.public_key}: {self.account_jwt(n)}" for n, a in self.accounts.items()),
            "}",
            f"authorization {{ timeout: {self.timeout} }}",
        ]
        if self.jetstream:
            domain = f", domain: {self.jetstream_domain}" if self.jetstream_domain else ""
            lines.append(f'jetstream {{ store_dir: "{self.directory / "jetstream"}"{domain} }}')
        if self.default_sentinel:
            lines.append(f"default_sentinel: {self.sentinel_jwt(bearer=True)}")
        return "\n".join([*lines, ""])

    # --- the service's side --------------------------------------------------------------

    def _account_settings(self, name: str) -> dict[str, Any]:
        account = self.accounts[name]
        values: dict[str, Any] = {
            "public_key": account.key.public_key,
            "signing_seed_file": self.seed_file(name),
        }
        if account.signing:
            values["signing_keys"] = [k.public_key for k in account.signing]
        if account.scoped:
            values["scoped"] = True
        return values

    def settings_values(self, policy_directory: Path) -> dict[str, Any]:
        """The service settings (as data) that match this server."""
        operator: dict[str, Any] = {
            "callout_account": self._account_settings(CALLOUT_ACCOUNT),
            "accounts": {name: self._account_settings(name) for name in self.targets},
        }
        values: dict[str, Any] = {
            "mode": "operator",
            "nats": {
                "servers": [f"nats://127.0.0.1:{self.port}"],
                "creds_file": self.service_creds_file,
            },
            "system_account": self.public_key(SYSTEM_ACCOUNT),
            "operator": operator,
            "policy": {"directory": policy_directory},
            # Tests start many services at once; a caller that wants probes turns them on.
            "http": {"enabled": False},
        }
        if self.encrypted:
            values["keys"] = {"xkey_seed_file": self.xkey_seed_file}
        return values

    def settings(self, policy_directory: Path, **overrides: Any) -> Settings:
        """Service settings that match this server."""
        return load_settings(None, **{**self.settings_values(policy_directory), **overrides})
