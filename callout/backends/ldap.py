"""The LDAP backend: user/password logins verified by a directory (`callout.backends.directory`).

The directory says who the user is and which groups they are in; the policy's ``groups:``
section says what those groups may do. Group names are matched the way LDAP compares DNs:
case and spaces around ``,`` and ``=`` do not matter, so a policy may write
``cn=NATS-Admins, ou=groups, dc=example, dc=org``. Empty passwords are refused before the
directory is asked (an empty simple bind is an *anonymous* bind, which many servers accept).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from callout.backends.equalcost import note_probe
from callout.credentials.presented import password_login
from callout.decision import BackendName, Decision, Identity, Lane, Reason
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.claims import AuthRequest

MAX_LOGIN_LENGTH = 256


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A user whose password the directory accepted: groups as DNs (or cns, per settings),
    ``attributes`` the configured ones, for ``{{user.attr.NAME}}``."""

    dn: str
    login: str
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    groups: tuple[str, ...] = ()


class Directory(Protocol):
    """What the LDAP backend needs from a directory (a fake at this boundary in unit tests)."""

    async def verify(self, login: str, password: str) -> DirectoryUser | Reason:
        """The user, or UNKNOWN_USER / BAD_CREDENTIALS; raises BackendUnavailableError."""
        ...

    def close(self) -> None: ...


def canonical_name(name: str) -> str:
    """A DN (or a plain group name) lower-cased, without spaces around ``,``, ``=`` and ``+``;
    escaped characters (``\\,``) are kept as written."""
    out: list[str] = []
    part: list[str] = []
    escaped = False
    for char in name:
        if escaped:
            part.append(char)
            escaped = False
        elif char == "\\":
            part.append(char)
            escaped = True
        elif char in ",=+":
            out += ["".join(part).strip(), char]
            part = []
        else:
            part.append(char)
    out.append("".join(part).strip())
    return "".join(out).lower()


class _GroupIndex:
    """The policy's group names by canonical form, rebuilt when the policy changes."""

    def __init__(self) -> None:
        self._digest = ""
        self._names: Mapping[str, str] = {}

    def matches(self, policy: PolicySnapshot, groups: Iterable[str]) -> tuple[str, ...]:
        if policy.digest != self._digest:
            names = [*policy.groups, *policy.deny_groups]
            self._names = {canonical_name(name): name for name in names}
            self._digest = policy.digest
        found = (self._names.get(canonical_name(group)) for group in groups)
        return tuple(dict.fromkeys(name for name in found if name is not None))


class LdapBackend:
    """Verifies user/password logins against a directory and maps its groups to the policy.

    With ``final=False`` (a later backend also takes passwords) a user the directory does not
    know is passed on; a known user with a wrong password is always refused here.
    """

    name: str = BackendName.LDAP

    def __init__(self, directory: Directory, *, final: bool = True) -> None:
        self.directory = directory
        self._final = final
        self._groups = _GroupIndex()

    async def authenticate(
        self, request: AuthRequest, policy: PolicySnapshot
    ) -> Identity | Decision | None:
        """Identity for a directory user with the right password; a deny or None otherwise."""
        login = password_login(request.connect)
        if login is None:
            return None
        user, password = login
        deny = {"backend": self.name, "principal": user}
        if not password:
            return Decision.deny(Reason.BAD_CREDENTIALS, detail="empty password", **deny)
        found: DirectoryUser | Reason = Reason.UNKNOWN_USER  # no such name can exist
        if len(user) <= MAX_LOGIN_LENGTH and user.isprintable():
            note_probe(self.directory)
            found = await self.directory.verify(user, password)
        if isinstance(found, Reason):
            if found is Reason.UNKNOWN_USER and not self._final:
                return None
            return Decision.deny(found, **deny)
        return Identity(
            principal=found.login,
            backend=self.name,
            groups=self._groups.matches(policy, found.groups),
            attributes=found.attributes,
        )

    def lane(self, request: AuthRequest, policy: PolicySnapshot) -> Lane | None:
        """A directory search and bind is expensive (an empty password is refused at once)."""
        login = password_login(request.connect)
        if login is None:
            return None
        return Lane.EXPENSIVE if login[1] else Lane.CHEAP

    def close(self) -> None:
        self.directory.close()
