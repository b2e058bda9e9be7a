"""The users of the shared integration suite: their passwords, an nkey sensor, a fast-hash
load user, and the policy file that grants them (one per environment, with its account names)."""

from __future__ import annotations

from pathlib import Path

import bcrypt

from callout.credentials.passwords import hash_password
from callout.protocol.nkeys import KeyPair, KeyRole

# A user for load tests: bcrypt at cost 4 verifies in about a millisecond, so 50 parallel logins
# measure the service's concurrency, not argon2 on a shared 2-core machine.
LOAD_USER = ("loader", "loader-pw")

PASSWORDS = {
    "alice": "alice-pw",
    "bob": "bob-pw",
    "shortlived": "short-pw",
    "lan-only": "lan-pw",
    "local-only": "local-pw",
    "namer": "namer-pw",
    "ws-only": "ws-pw",
}
SENSOR = KeyPair.generate(KeyRole.USER)

_POLICY = """\
version: 1
defaults:
  account: "{main}"
  expiry: 1h
roles:
  app:
    publish:
      allow: ["app.>", "$SYS.REQ.USER.INFO"]
    subscribe:
      allow: ["app.>", "_INBOX.>"]
  private:
    publish:
      allow: ["user.{{{{user.name}}}}.>"]
    subscribe:
      allow: ["user.{{{{user.name}}}}.>"]
  named:
    publish:
      allow: ["client.{{{{client.name}}}}.>"]
users:
  alice:
    password: "{alice}"
    roles: [app, private]
  bob:
    password: "{bob}"
    roles: [app]
    account: "{second}"
  shortlived:
    password: "{shortlived}"
    roles: [app]
    expiry: 2s
  lan-only:
    password: "{lan-only}"
    roles: [app]
    src: ["10.0.0.0/8"]
  local-only:
    password: "{local-only}"
    roles: [app]
    src: ["127.0.0.0/8", "::1/128"]
  namer:
    password: "{namer}"
    roles: [app, named]
  ws-only:
    password: "{ws-only}"
    roles: [app]
    connection_types: [WEBSOCKET]
  sensor:
    nkey: {sensor}
    roles: [app]
  {load_user}:
    password: "{load_hash}"
    roles: [app]
"""


def write_policy(directory: Path, main: str, second: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    hashes = {name: hash_password(password) for name, password in PASSWORDS.items()}
    name, password = LOAD_USER
    load_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    text = _POLICY.format(
        main=main,
        second=second,
        sensor=SENSOR.public_key,
        load_user=name,
        load_hash=load_hash,
        **hashes,
    )
    (directory / "policy.yaml").write_text(text)
    return directory
