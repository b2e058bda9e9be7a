"""The policy: YAML files security teams own, loaded into an immutable snapshot.

`load_policy` reads a directory (the only file I/O of the policy layer) into a
`PolicySnapshot`; `PolicySnapshot.authorize` decides a login from plain values.
"""

from callout.policy.loader import CheckResult, check_policy, load_policy
from callout.policy.schema import policy_schema, policy_schema_text
from callout.policy.snapshot import PolicySnapshot

__all__ = [
    "load_policy",
    "check_policy",
    "CheckResult",
    "PolicySnapshot",
    "policy_schema",
    "policy_schema_text",
]
