"""The policy: YAML files security teams own, compiled into an immutable snapshot.

`compile_texts` / `check_texts` compile file texts given as plain values (pure);
`load_policy` / `check_policy` read a directory (the only file I/O of the policy layer) and
hand its files to them. `PolicySnapshot.authorize` decides a login from plain values.
"""

from callout.policy.loader import check_policy, load_policy
from callout.policy.schema import policy_schema, policy_schema_text
from callout.policy.snapshot import PolicySnapshot
from callout.policy.texts import CheckResult, check_texts, compile_texts

__all__ = [
    "load_policy",
    "check_policy",
    "compile_texts",
    "check_texts",
    "CheckResult",
    "PolicySnapshot",
    "policy_schema",
    "policy_schema_text",
]
