"""`Runtime`: everything a reload may change (policy, signing keys, xkey), as one value.

The app swaps the whole value atomically; a request keeps the `Runtime` that was current when
it arrived, so a reload never mixes an old policy with a new key inside one answer.
``system_account`` is the configured *name* of the system account, if it is a target at all
(operator mode finds it by public key), so the pipeline can guard it.
"""

from __future__ import annotations

from dataclasses import dataclass

from callout.policy.snapshot import PolicySnapshot
from callout.protocol.nkeys import CurveKeyPair
from callout.service.issuer import Issuer


@dataclass(frozen=True, slots=True)
class Runtime:
    policy: PolicySnapshot
    issuer: Issuer
    xkey: CurveKeyPair | None = None
    system_account: str | None = None
