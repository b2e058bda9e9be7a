"""`callout nats-config --operator`: the nsc commands and server config for operator mode.

In operator mode nats-server reads the callout set-up from the callout account's JWT (its
``authorization`` member), not from its config file, and refuses ``auth_callout`` there. So
instead of a config block this prints what to run with ``nsc`` for the keys the service uses,
the ``authorization`` member that results, and the server config skeleton.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from callout.protocol.accounts import Authorization


@dataclass(frozen=True, slots=True)
class SignerKey:
    """A signing key the service signs with, which the account's JWT must list."""

    account: str  # the nsc account name
    key: str
    scoped: bool = False


@dataclass(frozen=True, slots=True)
class OperatorPlan:
    """What the operator-mode instructions are made of (public keys only)."""

    callout_account: str  # the nsc name of the callout account
    auth_users: Sequence[str]
    allowed_accounts: Sequence[str]  # public keys, or ["*"]
    signing_keys: Sequence[SignerKey] = ()
    xkey: str | None = None
    system_account: str | None = None
    timeout: float = 2.0
    notes: Sequence[str] = field(default_factory=tuple)

    def authorization(self) -> Authorization:
        """The callout account JWT's ``authorization`` member this plan sets up; `ValueError`
        without an auth user or with ``*`` beside other accounts."""
        return Authorization(tuple(self.auth_users), tuple(self.allowed_accounts), self.xkey or "")


def _continued(command: str, flags: Sequence[str]) -> list[str]:
    lines = [command + (" \\" if flags else "")]
    lines += [f"  {flag}" + (" \\" if i < len(flags) - 1 else "") for i, flag in enumerate(flags)]
    return lines


def operator_instructions(plan: OperatorPlan) -> str:
    """The nsc commands, the resulting authorization member and the server config skeleton."""
    member = plan.authorization().to_nats()
    out = [f"# {note}" for note in plan.notes]
    out += [
        "# Operator mode: nats-server reads the auth callout from the callout account's JWT.",
        f"# 1. Turn it on for account {plan.callout_account} (run where your nsc store is):",
    ]
    flags = [f"--auth-user {user}" for user in plan.auth_users]
    flags += [f"--allowed-account '{key}'" for key in plan.allowed_accounts]
    if plan.xkey:
        flags.append(f"--curve {plan.xkey}")
    out += _continued(f"nsc edit authcallout --account {plan.callout_account}", flags)
    step = 2
    if plan.signing_keys:
        step += 1
        out += [
            "",
            "# 2. The keys the service signs with must be listed in their accounts' JWTs",
            "#    (skip any that `nsc describe account NAME` already shows):",
        ]
        for signer in plan.signing_keys:
            out.append(f"nsc edit account --name {signer.account} --sk {signer.key}")
            if signer.scoped:
                out.append(
                    f"nsc edit signing-key --account {signer.account} --sk {signer.key} "
                    "--role ROLE --allow-pub ... --allow-sub ...   # its scope = the users' grants"
                )
    step = 3 if plan.signing_keys else 2  # the steps are numbered as printed
    out += [
        "",
        f"# {step}. Publish the changed account JWTs to the servers' resolver:",
        "nsc push -A",
        "",
        f"# The JWT of {plan.callout_account} then carries "
        f"(nsc describe account {plan.callout_account} --json | jq .nats.authorization):",
        f"#   {json.dumps(member)}",
        "",
        "# nats-server config (operator mode). resolver.conf comes from",
        "#   nsc generate config --nats-resolver --sys-account SYS > resolver.conf",
        "# and holds the operator JWT, system_account and the resolver:",
        "include resolver.conf",
    ]
    if plan.system_account:
        out.append(f"# system_account: {plan.system_account}   (already in resolver.conf)")
    out += [
        f"authorization {{ timeout: {plan.timeout:g} }}   # how long the server waits for us",
        "# Optional, for clients that present no JWT (plain user/password, token, nkey clients):",
        f"#   nsc add user --account {plan.callout_account} --name sentinel "
        "--deny-pubsub '>' --bearer",
        "#   default_sentinel: <the output of "
        f"nsc describe user --account {plan.callout_account} --name sentinel --raw>",
    ]
    return "\n".join(out)
