"""The directory client: search-then-bind over python-ldap, off the event loop.

Why python-ldap (docs/operations.md#ldap): it is libldap, the same TLS, SASL and referral code as
the OpenLDAP tools; it is maintained by a team and was the fastest of the three clients
measured (0.9 ms per full login). Its calls block, so they run in a bounded thread pool
(``pool_size`` daemon threads, which never hold up the process's exit) and reuse pooled
connections: one pool bound as the read-only service account for searches, one for the
users' binds. Every call has libldap's network and operation timeouts, and the whole login an
asyncio deadline on top, all well under the server's auth timeout. libldap built on GnuTLS
ignores its network timeout during an ``ldaps://`` handshake (it spins until the peer
answers), so before a new connection the directory's TLS handshake is tried here first,
within ``connect_timeout``; URLs that fail it are left out of that connection.
Any LDAP fault becomes `BackendUnavailableError` (the login fails closed) and discards the
connection, so the next login reconnects: recovery needs nothing.

A user the directory does not know costs the same directory work as a wrong password: the
search finds nothing, then a bind as a DN that does not exist is refused, so both paths make
one search and one bind (`callout.backends.equalcost` evens out the rest of the chain).

Filters are built with ``escape_filter_chars``; DNs only ever come from the directory.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import ldap
import ldap.dn
import ldap.filter

from callout.backends.ldap import DirectoryUser
from callout.backends.threads import DaemonExecutor
from callout.decision import BackendName, Reason
from callout.errors import BackendUnavailableError
from callout.settings import LdapBackendSettings

_MAX_GROUPS = 1000
# how a directory says "not this password" (locked and expired accounts included)
_REFUSED = (ldap.INVALID_CREDENTIALS, ldap.UNWILLING_TO_PERFORM, ldap.INAPPROPRIATE_AUTH)


def _handshakes(url: str, timeout: float) -> bool:
    """Whether an ``ldaps://`` URL completes a TLS handshake within ``timeout`` (other
    schemes: True). Only liveness is checked; libldap verifies the certificate afterwards."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "ldaps":
        return True
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # nothing is sent on this connection
    try:
        with (
            socket.create_connection(
                (parts.hostname or "localhost", parts.port or 636), timeout
            ) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname),
        ):
            return True
    except (OSError, ValueError):
        return False


def _describe(error: Exception) -> str:
    info = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    desc = info.get("desc") if isinstance(info, dict) else None
    return f"{type(error).__name__}: {desc}" if desc else type(error).__name__


def _text(values: list[bytes]) -> str | None:
    try:
        return values[0].decode("utf-8") if values else None
    except UnicodeDecodeError:
        return None


class _Pool:
    """Idle connections of one kind; at most ``size`` kept, broken ones never returned."""

    def __init__(self, connect: Callable[[], Any], size: int) -> None:
        self._connect = connect
        self._size = size
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def lease(self) -> Iterator[Any]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            _unbind(conn)
            raise
        with self._lock:
            if not self._closed and len(self._idle) < self._size:
                self._idle.append(conn)
                return
        _unbind(conn)

    def flush(self) -> None:
        """Drop every idle connection (they are likely dead)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _unbind(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.flush()


def _unbind(conn: Any) -> None:
    with suppress(ldap.LDAPError):
        conn.unbind_ext_s()


class LdapDirectory:
    """`callout.backends.ldap.Directory` over python-ldap, for one server or a failover list."""

    def __init__(self, config: LdapBackendSettings, bind_password: str) -> None:
        self._config = config
        self._bind_password = bind_password
        self._executor = DaemonExecutor(config.pool_size, thread_name_prefix="ldap")
        self._searches = _Pool(lambda: self._open(service=True), config.pool_size)
        self._binds = _Pool(lambda: self._open(service=False), config.pool_size)

    async def verify(self, login: str, password: str) -> DirectoryUser | Reason:
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._executor, self._verify, login, password)
        try:
            async with asyncio.timeout(self._config.deadline):
                return await call
        except TimeoutError:
            raise BackendUnavailableError(
                BackendName.LDAP, f"no answer within {self._config.deadline:g}s"
            ) from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._searches.close()
        self._binds.close()

    def _open(self, *, service: bool) -> Any:
        config = self._config
        urls = [url for url in config.urls if _handshakes(url, config.connect_timeout)]
        if not urls:
            raise BackendUnavailableError(
                BackendName.LDAP,
                f"no directory completed a TLS handshake within {config.connect_timeout:g}s",
            )
        conn = ldap.initialize(" ".join(urls))
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, config.connect_timeout)
        conn.set_option(ldap.OPT_TIMEOUT, config.timeout)
        conn.timeout = config.timeout  # python-ldap's own wait in every *_s call
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        if config.ca_file is not None:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(config.ca_file))
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # applies the TLS options; must come last
        try:
            if config.start_tls:
                conn.start_tls_s()
            if service:
                conn.simple_bind_s(config.bind_dn, self._bind_password)
        except ldap.INVALID_CREDENTIALS:
            _unbind(conn)
            raise BackendUnavailableError(
                BackendName.LDAP,
                "the service account's bind was refused (bind_dn, bind_password_file)",
            ) from None
        except BaseException:
            _unbind(conn)
            raise
        return conn

    def _verify(self, login: str, password: str) -> DirectoryUser | Reason:
        try:
            return self._login(login, password)
        except ldap.SERVER_DOWN:
            # idle connections die with a server restart: drop them all, try once afresh
            self._searches.flush()
            self._binds.flush()
        except ldap.LDAPError as error:
            raise BackendUnavailableError(BackendName.LDAP, _describe(error)) from None
        try:
            return self._login(login, password)
        except ldap.LDAPError as error:
            raise BackendUnavailableError(BackendName.LDAP, _describe(error)) from None

    def _login(self, login: str, password: str) -> DirectoryUser | Reason:
        with self._searches.lease() as search:
            found = self._find(search, login)
            if isinstance(found, Reason):
                self._bind_nobody()
                return found
            dn, attributes = found
            with self._binds.lease() as bind:
                try:
                    bind.simple_bind_s(dn, password)
                except _REFUSED:
                    return Reason.BAD_CREDENTIALS
            groups = self._groups(search, dn, attributes)
        values = {name: _text(attributes.get(name, [])) for name in self._config.attributes}
        return DirectoryUser(
            dn=dn,
            login=_text(attributes.get(self._config.login_attribute, [])) or login,
            attributes=MappingProxyType({k: v for k, v in values.items() if v is not None}),
            groups=groups,
        )

    def _bind_nobody(self) -> None:
        """The bind an unknown user would have cost: a DN that does not exist, refused."""
        nobody = f"cn=callout-nobody-{secrets.token_hex(8)},{self._config.user_base}"
        with self._binds.lease() as bind:
            try:
                bind.simple_bind_s(nobody, secrets.token_urlsafe(16))
            except (*_REFUSED, ldap.NO_SUCH_OBJECT):
                pass

    def _find(self, conn: Any, login: str) -> tuple[str, dict[str, list[bytes]]] | Reason:
        config = self._config
        query = config.user_filter.replace("{user}", ldap.filter.escape_filter_chars(login))
        wanted = [config.login_attribute, *config.attributes]
        if config.groups.mode == "memberof":
            wanted.append("memberOf")
        try:
            results = conn.search_ext_s(
                config.user_base,
                ldap.SCOPE_SUBTREE,
                query,
                attrlist=wanted,
                timeout=config.timeout,
                sizelimit=2,
            )
        except ldap.SIZELIMIT_EXCEEDED:
            return Reason.UNKNOWN_USER  # more than one entry: never guess which one is meant
        entries = [(dn, attrs) for dn, attrs in results if dn is not None]
        if len(entries) != 1:
            return Reason.UNKNOWN_USER
        return entries[0]

    def _groups(
        self, conn: Any, user_dn: str, attributes: dict[str, list[bytes]]
    ) -> tuple[str, ...]:
        config = self._config.groups
        if config.mode == "none":
            return ()
        depth = config.max_depth if config.nested else 1
        found: dict[str, None] = {}
        step: Callable[[Any, list[str]], list[str]]
        if config.mode == "memberof":
            frontier = [v.decode("utf-8", "replace") for v in attributes.get("memberOf", [])]
            step = self._member_of
            found.update(dict.fromkeys(frontier))
            depth -= 1
        else:
            frontier, step = [user_dn], self._members
        for _ in range(depth):
            if not frontier or len(found) >= _MAX_GROUPS:
                break
            frontier = [dn for dn in step(conn, frontier) if dn not in found and dn != user_dn]
            found.update(dict.fromkeys(frontier))
        return tuple(self._name(dn) for dn in found)

    def _members(self, conn: Any, members: list[str]) -> list[str]:
        """DNs of the groups with any of ``members`` as a member (one search per level)."""
        config = self._config.groups
        escape = ldap.filter.escape_filter_chars
        parts = [config.filter.replace("{dn}", escape(member)) for member in members]
        query = parts[0] if len(parts) == 1 else "(|" + "".join(parts) + ")"
        results = conn.search_ext_s(
            config.base,
            ldap.SCOPE_SUBTREE,
            query,
            attrlist=["1.1"],
            timeout=self._config.timeout,
            sizelimit=_MAX_GROUPS,
        )
        return [dn for dn, _ in results if dn is not None]

    def _member_of(self, conn: Any, groups: list[str]) -> list[str]:
        """The ``memberOf`` values of each of ``groups`` (nested groups, memberof overlay)."""
        out: list[str] = []
        for group in groups:
            try:
                results = conn.search_ext_s(
                    group, ldap.SCOPE_BASE, attrlist=["memberOf"], timeout=self._config.timeout
                )
            except ldap.NO_SUCH_OBJECT:
                continue
            for _, attrs in results:
                out += [v.decode("utf-8", "replace") for v in (attrs or {}).get("memberOf", [])]
        return out

    def _name(self, dn: str) -> str:
        if self._config.groups.names == "dn":
            return dn
        try:
            return str(ldap.dn.str2dn(dn)[0][0][1])
        except (ldap.DECODING_ERROR, IndexError):
            return dn
