"""How long a refused password login takes, per chain order and case: the medians that show
an unknown user and a wrong password cannot be told apart by time.

Real parts: a throwaway slapd on 127.0.0.1 (the integration suite's), a static policy with an
OWASP argon2id hash, the chain built from settings exactly as `callout serve` builds it, and
`Pipeline.decide` (no NATS: its round trip adds the same time to every case, and noise).
Cases run round-robin so that drift on a shared machine hits them alike.

    .venv/bin/python -m tests.benchmarks.denial_timing --rounds 100

prints one line per (order, case) with the median in ms, and per order the largest
difference between the medians of its cases.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from callout.backends.chain import BackendStats, build_chain, close_backends
from callout.backends.passwords import PasswordVerifier
from callout.credentials.passwords import hash_password
from callout.observability import logs
from callout.policy.snapshot import PolicySnapshot
from callout.protocol.nkeys import KeyPair, KeyRole
from callout.service.issuer import ConfigModeIssuer
from callout.service.pipeline import OpenedRequest, Pipeline
from callout.service.runtime import Runtime
from callout.settings import load_settings
from tests.integration.backends.slapd import GROUPS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Slapd
from tests.integration.backends.slapd import find_slapd as _find_slapd
from tests.unit.policy.helpers import NOW, request, snapshot

ORDERS = (
    "static",
    "ldap",
    "ldap static",
    "static ldap",
    "token oidc ldap static",
)
CASES = {
    "static-user-wrong": ("svc", "wrong-pw"),  # in the policy only, not in the directory
    "directory-user-wrong": ("bob", "wrong-pw"),
    "unknown-user": ("nobody", "wrong-pw"),
}


def _backend(kind: str, slapd: Slapd, secrets: Path) -> dict[str, Any]:
    if kind == "static":
        return {"type": "static"}
    if kind == "ldap":
        return {
            "type": "ldap",
            "urls": [slapd.url],
            "allow_plaintext": True,
            "bind_dn": SERVICE_DN,
            "bind_password_file": str(secrets / "bind"),
            "user_base": PEOPLE,
            "groups": {"base": GROUPS},
        }
    if kind == "token":
        return {"type": "token", "pepper_file": str(secrets / "pepper")}
    return {
        "type": "oidc",
        "issuers": [
            {
                "issuer": "https://idp.invalid",
                "audience": ["nats"],
                "jwks_url": "https://idp.invalid/jwks",
                "allow_any_subject": "benchmark: no token of this issuer is ever valid",
            }
        ],
    }


def _secrets(directory: Path) -> Path:
    directory.mkdir()
    for name, text in (("bind", SERVICE_PASSWORD), ("pepper", "p" * 40)):
        (directory / name).write_text(text)
        (directory / name).chmod(0o600)
    return directory


async def measure(
    order: str, slapd: Slapd, policy: PolicySnapshot, secrets: Path, rounds: int
) -> dict[str, float]:
    """Median seconds per case for one chain order."""
    settings = load_settings(
        None,
        keys={"issuer_seed_file": "/unused"},
        accounts=["APP"],
        backends=[_backend(kind, slapd, secrets) for kind in order.split()],
        decision_cache={"ttl": 0},
    )
    verifier = PasswordVerifier(max_workers=1)
    backends = build_chain(settings, verifier, BackendStats())
    runtime = Runtime(
        policy, ConfigModeIssuer(KeyPair.generate(KeyRole.ACCOUNT), frozenset({"APP"}))
    )
    pipeline = Pipeline(runtime=lambda: runtime, backends=backends)
    samples: dict[str, list[float]] = {case: [] for case in CASES}
    try:
        for round_ in range(rounds + 2):  # two warm-up rounds: pools connect, caches fill
            for case, (user, password) in CASES.items():
                opened = OpenedRequest(request(user=user, password=password), None, runtime)
                started = time.perf_counter()
                decision = await pipeline.decide(opened, now=NOW)
                elapsed = time.perf_counter() - started
                if decision.allowed:
                    raise SystemExit(f"{order}/{case}: allowed, the setup is wrong")
                if round_ >= 2:  # the first two rounds warm up
                    samples[case].append(elapsed)
    finally:
        close_backends(backends)
        verifier.close()
    return {case: statistics.median(values) for case, values in samples.items()}


async def run(rounds: int, directory: Path) -> int:
    binary = _find_slapd()
    if binary is None:
        sys.stderr.write("denial_timing: slapd not found (apt-get install slapd ldap-utils)\n")
        return 1
    slapd = Slapd(directory / "slapd", binary).create()
    try:
        policy = snapshot(
            _mk(directory / "policy"),
            f'users:\n  svc: {{password: "{hash_password("svc-pw")}", roles: []}}\n',
        )
        secrets = _secrets(directory / "secrets")
        for order in ORDERS:
            medians = await measure(order, slapd, policy, secrets, rounds)
            for case, median in medians.items():
                sys.stdout.write(f"{order:24} {case:22} median {median * 1000:7.2f} ms\n")
            spread = max(medians.values()) - min(medians.values())
            label = "(largest difference)"
            sys.stdout.write(f"{order:24} {label:22}        {spread * 1000:7.2f} ms\n")
    finally:
        slapd.stop()
    return 0


def _mk(path: Path) -> Path:
    path.mkdir()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="samples per case (default 100)")
    args = parser.parse_args(argv)
    logs.configure("warning", "console", stream=sys.stderr, cache=False)
    with tempfile.TemporaryDirectory(prefix="denial-timing-") as temp:
        return asyncio.run(run(args.rounds, Path(temp)))


if __name__ == "__main__":
    sys.exit(main())
