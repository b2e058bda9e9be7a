"""Options of the LDAP backend (`callout.backends.ldap`, `callout.backends.directory`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field, model_validator

from callout.decision import BackendName
from callout.settings.backends.common import TEMPLATE_NAME, check_outbound
from callout.settings.base import Section
from callout.settings.durations import Seconds

NAME: Final = BackendName.LDAP


class LdapGroupSettings(Section):
    """How group membership is read: ``member`` searches groups, ``memberof`` reads the
    user's ``memberOf`` (the overlay must exist), ``none`` reads no groups."""

    mode: Literal["member", "memberof", "none"] = "member"
    base: str | None = Field(default=None, description="search base of groups (member mode)")
    filter: str = "(&(objectClass=groupOfNames)(member={dn}))"
    nested: bool = Field(default=False, description="also the groups of groups, to max_depth")
    max_depth: int = Field(default=5, ge=1, le=20)
    names: Literal["dn", "cn"] = Field(
        default="dn", description="what the policy's groups: keys name: the DN or the cn"
    )


class LdapBackendSettings(Section):
    """Search-then-bind against a directory, as a read-only service account."""

    type: Literal["ldap"]
    accepts: tuple[Literal["password"], ...] = Field(("password",), min_length=1)
    urls: list[str] = Field(min_length=1, description="ldap:// or ldaps:// URLs, tried in order")
    start_tls: bool = False
    ca_file: Path | None = Field(default=None, description="CA bundle; default: system CAs")
    allow_plaintext: bool = Field(
        default=False, description="permit ldap:// without StartTLS (passwords in clear)"
    )
    bind_dn: str = Field(min_length=1, description="the read-only service account")
    bind_password_file: Path
    user_base: str = Field(min_length=1)
    user_filter: str = "(&(objectClass=inetOrgPerson)(uid={user}))"
    login_attribute: str = Field(default="uid", pattern=TEMPLATE_NAME)
    attributes: list[Annotated[str, Field(pattern=TEMPLATE_NAME)]] = Field(default_factory=list)
    groups: LdapGroupSettings = LdapGroupSettings()
    connect_timeout: Seconds = 0.5
    timeout: Seconds = Field(default=0.5, description="per LDAP operation")
    deadline: Seconds = Field(default=1.5, description="for a whole login")
    pool_size: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _coherent(self) -> LdapBackendSettings:
        for url in self.urls:
            scheme = url.partition("://")[0].lower()
            if scheme not in ("ldap", "ldaps"):
                raise ValueError(f"{url!r}: an LDAP URL starts with ldap:// or ldaps://")
            if scheme == "ldaps" and self.start_tls:
                raise ValueError(f"{url!r}: ldaps:// is already TLS; do not set start_tls")
            if scheme == "ldap" and not self.start_tls and not self.allow_plaintext:
                raise ValueError(
                    f"{url!r} sends passwords in clear: use ldaps://, start_tls: true,"
                    " or allow_plaintext: true"
                )
        if "{user}" not in self.user_filter:
            raise ValueError("user_filter must contain {user}")
        if self.groups.mode == "member":
            if not self.groups.base:
                raise ValueError("groups.base is required when groups.mode is member")
            if "{dn}" not in self.groups.filter:
                raise ValueError("groups.filter must contain {dn}")
        check_outbound(self.connect_timeout, "connect_timeout")
        check_outbound(self.timeout, "timeout")
        check_outbound(self.deadline, "deadline")
        return self
