"""The metrics of policies distributed through JetStream KV (`policy.source: kv`): which
revision a replica runs, the newest one it has seen in the bucket, and the drift between them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class DistributionMetrics:
    """Registered on the service's registry, next to `callout_policy_info`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.revision = Gauge(
            "callout_policy_revision",
            "KV revision of the policy bundle this replica runs (0: none yet).",
            registry=registry,
        )
        self.bucket_revision = Gauge(
            "callout_policy_bucket_revision",
            "Newest revision of the policy bundle this replica has seen in the bucket.",
            registry=registry,
        )
        self.drift = Gauge(
            "callout_policy_drift",
            "1 while the bucket holds a newer revision than the one this replica runs "
            "(a refused push, or one not applied yet).",
            registry=registry,
        )
        self.bucket_reachable = Gauge(
            "callout_policy_bucket_reachable",
            "1 while the replica watches the policy bucket; 0 while it cannot (it keeps "
            "the last good policy).",
            registry=registry,
        )
        self.rejected = Counter(
            "callout_policy_bundles_rejected",
            "Revisions from the bucket that were not applied, by reason: invalid (not a "
            "bundle), check (policy errors), reload (keys or settings did not load).",
            ["reason"],
            registry=registry,
        )
        for reason in ("invalid", "check", "reload"):
            self.rejected.labels(reason)

    def observed(self, *, active: int, latest: int) -> None:
        self.revision.set(active)
        self.bucket_revision.set(latest)
        self.drift.set(1 if latest > active else 0)
