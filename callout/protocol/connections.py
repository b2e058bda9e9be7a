"""Connection types (nats-server's names) and how an authorization request reports each.

nats-server names the kinds of client connection (``STANDARD``, ``WEBSOCKET``, ...) in
``allowed_connection_types``; the authorization request does not carry that name, only
``client_info.kind`` and ``client_info.type``. `REPORTED_AS` is the one table between the two:
the policy reads requests through `connection_types`, ``policy explain`` builds requests from it.
"""

from __future__ import annotations

from types import MappingProxyType

from callout.protocol.claims import ClientInfo

# connection type → (client_info.kind, client_info.type) as nats-server 2.10+ reports it
REPORTED_AS = MappingProxyType(
    {
        "STANDARD": ("Client", "nats"),
        "WEBSOCKET": ("Client", "websocket"),
        "MQTT": ("Client", "mqtt"),
        "MQTT_WS": ("Client", "mqtt"),  # not told apart from MQTT
        "LEAFNODE": ("Leafnode", ""),
        "LEAFNODE_WS": ("Leafnode", ""),  # not told apart from LEAFNODE
        "IN_PROCESS": ("Client", "nats"),  # reported as STANDARD
    }
)
# Reported exactly like another type, so a request never shows it: matching it would let a
# STANDARD client in wherever only IN_PROCESS is allowed.
_HIDDEN = frozenset({"IN_PROCESS"})


def connection_types(client: ClientInfo) -> frozenset[str]:
    """The connection types this client may be; empty when it is of an unknown kind. An empty
    kind means a client; a client's empty type means ``nats``; a leaf node's type is ignored."""
    kind = client.kind.lower() or "client"
    if kind == "leafnode":
        reported = (kind, "")
    elif kind == "client":
        reported = (kind, client.type.lower() or "nats")
    else:
        return frozenset()
    return frozenset(
        name
        for name, (name_kind, name_type) in REPORTED_AS.items()
        if (name_kind.lower(), name_type) == reported and name not in _HIDDEN
    )
