"""Shared state on JetStream KV: what the replicas of one deployment know together.

`store.SharedStore` opens the buckets on the service's connection, follows each with a watch
and keeps a local mirror, writes changes in the background, probes KV, and falls back to local
state (and back) by itself; `health.StateHealth` says which it is on. On top of it:
`counters.SharedCounters` (the throttle's buckets) and `revocations.SharedRevocations` (the
deny list). A login never awaits KV: reads come from the mirrors, writes are queued.
"""
