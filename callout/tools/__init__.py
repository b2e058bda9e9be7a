"""Tools over the policy and the service: `explain` (why a login gets what it gets), `policytest`
(policy test cases), `diff` (what a policy change grants or takes away)."""
