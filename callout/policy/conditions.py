"""Login conditions the service enforces itself, because nats-server does not for callout users.

``src`` and ``allowed_connection_types`` in a user JWT are validated by nats-server but not
enforced for callout users (docs/protocol.md#user-claims), so the service checks them here. Time
windows are enforced by the server too; checking them here gives a precise deny reason.
Connection types are read from the request by `callout.protocol.connections.connection_types`.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime

from callout.policy.rules import Network, TimeRule

_SECONDS_PER_DAY = 86400


def source_allowed(networks: tuple[Network, ...], host: str) -> bool:
    """Whether the client address ``host`` is inside one of ``networks``."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def within(rule: TimeRule, now: float) -> bool:
    """Whether unix time ``now`` falls in one of the rule's daily windows, in its zone."""
    local = datetime.fromtimestamp(now, rule.zone)
    second = local.hour * 3600 + local.minute * 60 + local.second
    for start, end in rule.windows:
        if start < end:
            if start <= second < end:
                return True
        elif second >= start or second < end:  # wraps midnight
            return True
    return False
