"""A stand-in identity provider: signing keys, token minting, and a JWKS served over HTTP on
127.0.0.1 (stdlib http.server in a thread) whose key set tests can rotate; with its OpenID
discovery document at ``<issuer>/.well-known/openid-configuration``. Given a TLS context it
serves HTTPS instead; the context may be swapped while it runs (a certificate from another
CA, as after a botched renewal)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example.test/realms/nats"
AUDIENCE = "nats"
REALM = "/realms/nats"  # the path of `JwksServer.issuer`
DISCOVERY_PATH = REALM + "/.well-known/openid-configuration"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any = field(repr=False)

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        data.update(kid=self.kid, alg=self.alg, use="sig")
        return data


def claims(
    sub: str = "svc-1", *, lifetime: int = 300, issuer: str = ISSUER, **extra: Any
) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": now + lifetime,
        **extra,
    }


def mint(key: SigningKey, payload: dict[str, Any], **header: Any) -> str:
    return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid, **header})


class _HttpServer(ThreadingHTTPServer):
    """http.server with TLS on each accepted connection when ``context`` is set."""

    context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.context is None:
            return connection, address
        # the handshake runs in the request's thread, on its first read
        wrapped = self.context.wrap_socket(
            connection, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that refuses our certificate ends its handshake: expected in tests


class JwksServer:
    """Serves ``keys`` as a JWKS at ``/jwks`` and counts the requests; `issuer` is the URL
    whose discovery document (``discovery``, or one naming `issuer` and `url`) it serves.
    With ``tls`` (a server context) both are served over HTTPS; `tls` may be replaced."""

    def __init__(self, *keys: SigningKey, tls: ssl.SSLContext | None = None) -> None:
        self.keys = list(keys)
        self.requests = 0
        self.discovery: dict[str, Any] | None = None
        self.discovery_requests = 0
        self.fail = False
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == DISCOVERY_PATH and not server.fail:
                    server.discovery_requests += 1
                    document = server.discovery or {"issuer": server.issuer, "jwks_uri": server.url}
                    self._send(json.dumps(document).encode())
                    return
                server.requests += 1
                time.sleep(server.delay)
                if server.fail or self.path != "/jwks":
                    self.send_error(503 if server.fail else 404)
                    return
                self._send(json.dumps({"keys": [key.jwk() for key in server.keys]}).encode())

            def _send(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = _HttpServer(("127.0.0.1", 0), Handler)
        self._httpd.context = tls
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def tls(self) -> ssl.SSLContext | None:
        return self._httpd.context

    @tls.setter
    def tls(self, context: ssl.SSLContext | None) -> None:
        self._httpd.context = context  # used from the next connection on

    @property
    def _origin(self) -> str:
        scheme = "http" if self._httpd.context is None else "https"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self._origin}/jwks"

    @property
    def issuer(self) -> str:
        return f"{self._origin}{REALM}"

    def start(self) -> JwksServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@contextmanager
def jwks_server(*keys: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer(*keys).start()
    try:
        yield server
    finally:
        server.stop()
