"""Login conditions the service enforces itself, because nats-server does not for callout users.

``src`` and ``allowed_connection_types`` in a user JWT are validated by nats-server but not
enforced for callout users (docs/protocol.md#user-claims), so the service checks them here. Time
windows are enforced by the server too; checking them here gives a precise deny reason.
Connection types are read from the request by `callout.protocol.connections.connection_types`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import datetime

from callout.policy.rules import Network, Rules, TimeRule
from callout.policy.templates import Variable
from callout.protocol.claims import ClientInfo
from callout.protocol.connections import REPORTED_AS

_SECONDS_PER_DAY = 86400
# leaf node connections: the request does not tell LEAFNODE and LEAFNODE_WS apart
_LEAFNODE = frozenset(name for name, (kind, _) in REPORTED_AS.items() if kind == "Leafnode")


def source_allowed(networks: tuple[Network, ...], host: str) -> bool:
    """Whether the client address ``host`` is inside one of ``networks``."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def leafnode_allowed(rules: Rules, client: ClientInfo) -> bool:
    """A leafnode connection bridges a whole account, so it is admitted only by rules that
    name LEAFNODE (or LEAFNODE_WS) in ``connection_types``: a user's password reused as a
    leaf remote's credentials does not open a bridge."""
    if client.kind.lower() != "leafnode":
        return True
    return bool(rules.connection_types and rules.connection_types & _LEAFNODE)


def mqtt_client_id_allowed(
    rules: Rules, client: ClientInfo, value: Callable[[Variable], str]
) -> bool:
    """Whether an MQTT client's id fits one pattern of every ``mqtt_client_id`` list; other
    clients have no MQTT id to check."""
    if client.type.lower() != "mqtt" or not rules.mqtt_client_ids:
        return True
    return all(
        any(pattern.matches(client.mqtt_id, value) for pattern in patterns)
        for patterns in rules.mqtt_client_ids
    )


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
