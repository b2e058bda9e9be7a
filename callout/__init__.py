"""nats-auth-callout: an authorization callout service for nats-server."""

__version__ = "0.1.0"
