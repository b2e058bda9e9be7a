"""A benchmark anyone can rerun: a raw-socket load generator, a driver that starts nats-server
(static baseline) and nats-server + this service per scenario, and a reconnect storm."""
