"""The floor of the stack: the least a valid auth-callout responder on nats-py can do.

It opens the request (when sealed), decodes and verifies its JWT, signs a user JWT and the
response around it, and publishes the answer: no policy, no credential check, no cache, no
throttle, no audit, no metrics. It allows everyone, so it is a yardstick only: `callout bench`
runs it as the ``floor`` scenario with the same driver, and every report shows the service's
CPU and latency divided by the floor's. Run as ``python -m callout.bench.floor --config FILE``
with the service's settings file (it reads the NATS login, the issuer seed, the xkey seed and
the first target account from it) and stopped with SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

import nats
from nats.aio.msg import Msg

from callout.decision import Permissions, UserGrant
from callout.protocol import jwt, xkey
from callout.protocol.claims import AuthRequest, response_claims, user_claims
from callout.protocol.nkeys import CurveKeyPair, KeyPair, KeyRole
from callout.protocol.xkey import HEADER as XKEY_HEADER
from callout.secretfiles import read_secret
from callout.settings import load_settings

SUBJECT = "$SYS.REQ.USER.AUTH"
READY = "service_ready"  # what `ServiceProcess.wait_for` waits for
PERMISSIONS = Permissions(pub_allow=("bench.>",), sub_allow=("bench.>", "_INBOX.>"))


class FloorResponder:
    """Answers every verified request with a signed grant into ``account``."""

    def __init__(self, issuer: KeyPair, account: str, own_xkey: CurveKeyPair | None) -> None:
        self.issuer = issuer
        self.account = account
        self.own_xkey = own_xkey

    def answer(self, payload: bytes, server_xkey: str | None) -> bytes:
        """The reply bytes for one request; raises on anything that is not a valid request."""
        if self.own_xkey is not None and server_xkey is not None:
            payload = xkey.open_box(payload, self.own_xkey, server_xkey)
        claims = jwt.decode(payload.decode("ascii"), expected_type="authorization_request")
        request = AuthRequest.from_claims(claims)
        now = int(time.time())
        grant = UserGrant("floor", self.account, now + 3600, PERMISSIONS)
        user_jwt = jwt.encode(
            user_claims(grant, request.user_nkey, audience=self.account), self.issuer, iat=now
        )
        response = jwt.encode(response_claims(request, user_jwt=user_jwt), self.issuer, iat=now)
        data = response.encode("ascii")
        if self.own_xkey is not None and server_xkey is not None:
            return xkey.seal(data, self.own_xkey, server_xkey)
        return data


async def serve(config: Path) -> None:
    settings = load_settings(config)
    if settings.keys.issuer_seed_file is None:
        raise SystemExit("the floor needs keys.issuer_seed_file")
    issuer = KeyPair.from_seed(read_secret(settings.keys.issuer_seed_file, "issuer seed"))
    if issuer.role is not KeyRole.ACCOUNT:
        raise SystemExit("the floor needs an account issuer key (config mode)")
    xkey_file = settings.keys.xkey_seed_file
    own_xkey = CurveKeyPair.from_seed(read_secret(xkey_file, "xkey seed")) if xkey_file else None
    responder = FloorResponder(issuer, settings.accounts[0], own_xkey)
    password = None
    if settings.nats.password_file is not None:
        password = read_secret(settings.nats.password_file, "NATS password")
    nc = await nats.connect(
        servers=settings.nats.servers,
        user=settings.nats.user,
        password=password,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.25,
    )

    async def on_request(msg: Msg) -> None:
        header = next(
            (v for k, v in (msg.headers or {}).items() if k.lower() == XKEY_HEADER.lower()), None
        )
        try:
            reply = responder.answer(msg.data, header)
        except Exception:  # noqa: BLE001 - the floor answers valid requests only
            return
        await nc.publish(msg.reply, reply)

    await nc.subscribe(SUBJECT, queue="auth-callout", cb=on_request)
    await nc.flush()
    sys.stdout.write(READY + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await nc.drain()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callout.bench.floor")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
