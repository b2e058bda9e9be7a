"""`ConfigModeSetup`: throwaway keys, secret files and a server config for config mode."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole
from callout.secretfiles import write_secret
from callout.serverconf import placeholder_nkey, users_block
from callout.settings import Settings, load_settings

# The least privilege live sessions need in the system account (README "Live sessions").
SYSTEM_USER_PERMISSIONS = (
    '{publish: ["$SYS.REQ.SERVER.*.KICK"], subscribe: ["$SYS.ACCOUNT.*.CONNECT", '
    '"$SYS.ACCOUNT.*.DISCONNECT", "$SYS.SERVER.*.SHUTDOWN", "_INBOX.>"]}'
)


def config_safe_password() -> str:
    """A random password nats-server reads as a string through ``$VARIABLE``: its config parser
    takes a value that starts with a digit for a number or a date (``5-Cx...`` fails to load),
    so the password starts with a letter."""
    return "p" + secrets.token_urlsafe(18)


@dataclass
class ConfigModeSetup:
    """Keys, secret files and a server config for a config-mode callout on 127.0.0.1.

    ``callout_account=None`` uses the global account (`$G`) for the service and the users;
    otherwise the service lives in ``callout_account`` and users go to ``target_accounts``.
    """

    directory: Path
    port: int
    callout_account: str | None = "AUTH"
    target_accounts: tuple[str, ...] = ("APP",)
    encrypted: bool = False
    jetstream: bool = False  # JetStream on, enabled for the callout account (audit stream)
    jetstream_targets: bool = False  # with jetstream: enabled for the target accounts too
    jetstream_domain: str | None = None  # with jetstream: the server's JetStream domain
    timeout: float = 2.0
    auth_user: str = "auth"
    server_name: str = "callout_dev"
    extra_config: str = ""
    issuer: KeyPair = field(default_factory=lambda: KeyPair.generate(KeyRole.ACCOUNT))
    xkey: CurveKeyPair = field(default_factory=CurveKeyPair.generate)
    auth_password: str = field(default_factory=config_safe_password, repr=False)
    # The placeholder nkey user every config-mode config carries (see callout.serverconf).
    nonce_user: str = field(default_factory=placeholder_nkey)
    # A user of a SYS system account (an auth user, so not called out), for live sessions.
    system_user: str | None = None
    system_password: str = field(default_factory=config_safe_password, repr=False)

    @property
    def accounts(self) -> list[str]:
        return list(self.target_accounts) if self.callout_account else ["$G"]

    @property
    def issuer_seed_file(self) -> Path:
        return self.directory / "issuer.nk"

    @property
    def xkey_seed_file(self) -> Path:
        return self.directory / "xkey.nk"

    @property
    def password_file(self) -> Path:
        return self.directory / "nats-password"

    @property
    def config_file(self) -> Path:
        return self.directory / "nats-server.conf"

    @property
    def system_password_file(self) -> Path:
        return self.directory / "nats-system-password"

    def write(self) -> ConfigModeSetup:
        """Write the seed, password and server config files (mode 0600)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        write_secret(self.issuer_seed_file, self.issuer.seed)
        write_secret(self.password_file, self.auth_password)
        if self.system_user:
            write_secret(self.system_password_file, self.system_password)
        if self.encrypted:
            write_secret(self.xkey_seed_file, self.xkey.seed)
        self.config_file.write_text(self.server_config(), encoding="utf-8")
        return self

    def server_config(self) -> str:
        service_user = f'{{user: "{self.auth_user}", password: "{self.auth_password}"}}'
        auth_users = [self.auth_user, *([self.system_user] if self.system_user else [])]
        callout = [f"issuer: {self.issuer.public_key}", f"auth_users: [{', '.join(auth_users)}]"]
        if self.encrypted:
            callout.append(f"xkey: {self.xkey.public_key}")
        lines = [f"listen: 127.0.0.1:{self.port}", f"server_name: {self.server_name}"]
        if self.jetstream:
            domain = f", domain: {self.jetstream_domain}" if self.jetstream_domain else ""
            lines.append(f'jetstream {{ store_dir: "{self.directory / "jetstream"}"{domain} }}')
        if self.callout_account:
            callout.append(f"account: {self.callout_account}")
            js = ["    jetstream: enabled"] if self.jetstream else []
            if self.system_user:
                lines.append("system_account: SYS")
            lines.append("accounts {")
            if self.system_user:
                system_user = (
                    f'{{user: "{self.system_user}", password: "{self.system_password}", '
                    f"permissions: {SYSTEM_USER_PERMISSIONS}}}"
                )
                lines.append(f"  SYS {{ users: [ {system_user} ] }}")
            lines += [f"  {self.callout_account} {{", *js]
            lines += users_block([service_user], self.nonce_user, indent="    ")
            target = "{ jetstream: enabled }" if self.jetstream and self.jetstream_targets else "{}"
            lines += ["  }", *(f"  {name} {target}" for name in self.target_accounts), "}"]
            lines.append("authorization {")
        else:
            lines.append("authorization {")
            lines += users_block([service_user], self.nonce_user, indent="  ")
        lines += [f"  timeout: {self.timeout}", "  auth_callout {"]
        lines += [f"    {line}" for line in callout]
        lines += ["  }", "}", self.extra_config, ""]
        return "\n".join(lines)

    def settings(self, policy_directory: Path, **overrides: Any) -> Settings:
        """Service settings that match this server."""
        keys: dict[str, Any] = {"issuer_seed_file": self.issuer_seed_file}
        if self.encrypted:
            keys["xkey_seed_file"] = self.xkey_seed_file
        values: dict[str, Any] = {
            "nats": {
                "servers": [f"nats://127.0.0.1:{self.port}"],
                "user": self.auth_user,
                "password_file": self.password_file,
            },
            "keys": keys,
            "accounts": self.accounts,
            "policy": {"directory": policy_directory},
            # No fixed probe port in tests: many services run at once on one machine.
            "http": {"enabled": False},
        }
        values.update(overrides)
        return load_settings(None, **values)
