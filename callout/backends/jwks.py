"""JSON Web Key Sets for the OIDC backend: read from a file or fetched from a URL.

Fetching is the one outbound HTTP call of the service. It runs in a worker thread with a
total deadline (never on the event loop), keeps the keys for ``ttl``, and fetches again when
a token names a key id it does not know (key rotation), but never more often than
``min_interval``: a stream of tokens with made-up ``kid`` values must not become a stream of
requests to the identity provider. A failed fetch keeps the last good keys; with none at
all, logins with this issuer fail closed (`BackendUnavailableError`).

With ``discovery_issuer`` the key URL comes from the issuer's metadata
(`callout.backends.discovery`): read again at every refresh until a key set loads from it,
then kept; within the same deadline and size limit as the keys. A discovery failure is a
failed fetch like any other: the last good keys stay.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import structlog
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from callout.backends.discovery import discovery_url, jwks_uri
from callout.decision import BackendName
from callout.errors import BackendUnavailableError

log = structlog.get_logger("callout.jwks")

MAX_JWKS_BYTES = 1 << 20
_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


class SigningKey:
    """One public key of a set; a verifier per algorithm is made once and kept."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = dict(data)
        kid = data.get("kid")
        self.kid = kid if isinstance(kid, str) else None
        self._verifiers: dict[str, PyJWK] = {}

    def verifier(self, algorithm: str) -> PyJWK | None:
        """A PyJWK bound to ``algorithm``, or None when this key cannot verify it."""
        found = self._verifiers.get(algorithm)
        if found is not None:
            return found
        declared = self.data.get("alg")
        if declared is not None and declared != algorithm:
            return None
        try:
            found = PyJWK(self.data, algorithm)
        except PyJWKError:  # also a key of another type than the algorithm needs
            return None
        self._verifiers[algorithm] = found
        return found


def parse_jwks(data: bytes) -> list[SigningKey]:
    """The usable signing keys of a JWKS document; ValueError when it is not one."""
    document = json.loads(data)
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise ValueError("not a JWKS document (no keys list)")  # noqa: TRY004 - bad input data
    out = []
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in _KEY_TYPES:
            continue  # symmetric ("oct") keys never verify our tokens
        if key.get("use", "sig") != "sig" or "d" in key:
            continue  # an encryption key, or a private key published by mistake
        out.append(SigningKey(key))
    return out


def _without_credentials(url: str) -> str:
    """The URL as it may appear in logs and errors: no ``user:password@``."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a JWKS that moves is an error to look at, not to follow silently


class JwksSource:
    """The keys of one issuer, from ``url`` or ``file``."""

    def __init__(
        self,
        *,
        executor: Executor,
        url: str | None = None,
        file: Path | None = None,
        discovery_issuer: str | None = None,
        ca_file: Path | None = None,
        ttl: float = 600.0,
        min_interval: float = 30.0,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if [url, file, discovery_issuer].count(None) != 2:  # noqa: PLR2004 - one of three
            raise ValueError("exactly one of url, file and discovery_issuer")
        self._issuer = discovery_issuer
        self._discovery = discovery_url(discovery_issuer) if discovery_issuer else None
        where = url or self._discovery
        self.location = _without_credentials(where) if where else str(file)
        self._url = url
        self._file = file
        self._executor = executor
        self._ttl = ttl
        self._min_interval = min_interval
        self._timeout = timeout
        self._clock = clock
        self._keys: list[SigningKey] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _NoRedirect
        )
        self._jwks_url_good = url is not None  # a discovered URL is kept once keys load
        self.fetches = 0
        self.failures = 0

    @property
    def key_count(self) -> int:
        return len(self._keys or ())

    async def find(self, kid: str | None) -> SigningKey | None:
        """The key ``kid`` names (without a kid: the only key), fetching per the rules above."""
        if self._keys is None or self._clock() - self._fetched_at >= self._ttl:
            await self._refresh()
        found = self._lookup(kid)
        if found is None:
            await self._refresh()
            found = self._lookup(kid)
        return found

    def loaded(self, kid: str | None) -> SigningKey | None:
        """The key ``kid`` names among the keys loaded and still fresh, without fetching:
        None where `find` might fetch (no keys, keys past ``ttl``, a kid not among them)."""
        if self._keys is None or self._clock() - self._fetched_at >= self._ttl:
            return None
        return self._lookup(kid)

    def _lookup(self, kid: str | None) -> SigningKey | None:
        keys = self._keys or []
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        return next((key for key in keys if key.kid == kid), None)

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            # without any keys, retry sooner: every login of this issuer is failing meanwhile
            gap = self._min_interval if self._keys is not None else min(self._min_interval, 1.0)
            if self._attempted_at is not None and now - self._attempted_at < gap:
                if self._keys is None:
                    raise BackendUnavailableError(
                        BackendName.OIDC, f"no keys from {self.location} yet"
                    )
                return
            self._attempted_at = now
            self.fetches += 1
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self._timeout):
                    data = await loop.run_in_executor(self._executor, self._read)
                keys = parse_jwks(data)
            except (OSError, TimeoutError, ValueError) as error:
                self.failures += 1
                self._jwks_url_good = self._discovery is None  # discover again next time
                problem = type(error).__name__
                detail = str(error) if type(error) is ValueError else ""  # our own words
                log.warning(
                    "jwks_fetch_failed", location=self.location, error=problem, detail=detail
                )
                if self._keys is None:
                    raise BackendUnavailableError(
                        BackendName.OIDC, f"cannot load keys from {self.location}: {problem}"
                    ) from None
                return
            self._keys = keys
            self._fetched_at = self._clock()
            self._jwks_url_good = True
            log.info("jwks_loaded", location=self.location, keys=len(keys))

    def _read(self) -> bytes:
        """The JWKS bytes (in a worker thread): bounded in size and in total time."""
        if self._file is not None:
            with self._file.open("rb") as handle:
                data = handle.read(MAX_JWKS_BYTES + 1)
            if len(data) > MAX_JWKS_BYTES:
                raise ValueError("JWKS file too large")
            return data
        deadline = time.monotonic() + self._timeout
        if self._discovery is not None and not self._jwks_url_good:
            assert self._issuer is not None  # noqa: S101 - set together (__init__)
            self._url = jwks_uri(self._get(self._discovery, deadline), self._issuer)
        assert self._url is not None  # noqa: S101 - configured, or discovered just now
        return self._get(self._url, deadline)

    def _get(self, url: str, deadline: float) -> bytes:
        """The body at ``url``: at most MAX_JWKS_BYTES, before ``deadline``, no redirects."""
        remaining = max(0.001, deadline - time.monotonic())
        request = urllib.request.Request(  # noqa: S310 - schemes checked in settings/discovery
            url, headers={"Accept": "application/json"}
        )
        with self._opener.open(request, timeout=remaining) as response:
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_JWKS_BYTES or time.monotonic() > deadline:
                    raise ValueError("response too large or too slow")
            return b"".join(chunks)
