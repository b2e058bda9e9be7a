"""The nats-server configuration text of config mode: what `callout nats-config` prints and
what `callout dev` writes, from one place.

nkey clients (nats-py, nats.go with a seed) send their public key only to sign the nonce that
nats-server puts in its INFO, and the server sends a nonce only when it knows at least one nkey
user (or runs in operator mode). Without one, an nkey client sends no credentials at all and
the service can only answer ``no_credentials``. Every config we print or write therefore carries
a placeholder nkey user whose seed is thrown away at once: nobody can log in as it.
"""

from __future__ import annotations

from callout.protocol.nkeys import KeyPair, KeyRole

NONCE_USER_COMMENT = (
    "Placeholder nkey user (its seed was never kept: nobody can log in as it). nats-server",
    "sends nkey clients the nonce they sign only when it knows an nkey user; keep this line.",
)


def placeholder_nkey() -> str:
    """A fresh user public key whose seed is discarded here."""
    return KeyPair.generate(KeyRole.USER).public_key


def users_block(users: list[str], nonce_user: str, indent: str = "") -> list[str]:
    """``users: [...]`` with ``users`` and the placeholder nkey user, one entry per line."""
    lines = [f"{indent}users: ["]
    lines += [f"{indent}  {user}" for user in users]
    lines += [f"{indent}  # {line}" for line in NONCE_USER_COMMENT]
    lines += [f"{indent}  {{ nkey: {nonce_user} }}", f"{indent}]"]
    return lines


def authorization_block(
    issuer: str, xkey: str | None, account: str, auth_users: list[str], timeout: float
) -> str:
    """The nats-server `authorization` block for a config-mode callout."""
    users = ", ".join(auth_users)
    lines = [
        "authorization {",
        f"  timeout: {timeout:g}",
        "  auth_callout {",
        f"    issuer: {issuer}",
        f"    auth_users: [ {users} ]",
        f"    account: {account}",
    ]
    if xkey:
        lines.append(f"    xkey: {xkey}")
    lines += ["  }", "}"]
    return "\n".join(lines)


def accounts_block(
    callout_account: str, service_user: str, targets: list[str], nonce_user: str
) -> str:
    """The ``accounts`` block: the callout account with the service's login and the placeholder
    nkey user, then each target account on its own line (nats-server 2.15 refuses several
    accounts on one line)."""
    lines = ["accounts {", f"  {callout_account} {{"]
    lines += users_block([service_user], nonce_user, indent="    ")
    lines.append("  }")
    lines += [f"  {name} {{}}" for name in targets]
    lines.append("}")
    return "\n".join(lines)
