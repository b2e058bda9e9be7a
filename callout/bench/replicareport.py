"""The report of `callout bench --replicas`: one row per window and mode, the table, and the
latency shared state adds (on - off) per scenario and concurrency."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from callout.bench.driver import Row


@dataclass
class ReplicaRow:
    """One measured window of the replicas in one mode: the window's row (CPU ``service`` is
    the replicas' sum) and how many requests each replica answered in it."""

    row: Row
    shared_state: bool
    answered: list[int] = field(default_factory=list)
    shed: int = 0  # answered with `overloaded` at admission (no decision worked on)
    kv_failures: int = 0  # with shared state: failed KV operations and dropped writes
    kv_up: bool = True  # with shared state: every replica on it at the window's end
    nodes: int = 1  # nats-servers (a cluster when more than one)

    @property
    def mode(self) -> str:
        return "on" if self.shared_state else "off"

    def as_dict(self) -> dict[str, object]:
        return {
            **self.row.as_dict(),
            "replicas": len(self.answered),
            "nats_servers": self.nodes,
            "shared_state": self.mode,
            "answered_by_replica": self.answered,
            "shed_overloaded": self.shed,
            "kv_failures": self.kv_failures if self.shared_state else None,
            "kv_up": self.kv_up if self.shared_state else None,
        }


def added_latency(rows: list[ReplicaRow]) -> list[tuple[str, int, float, float]]:
    """(scenario, concurrency, p50 on - off, p99 on - off) in milliseconds, for every window
    measured in both modes."""
    off = {(r.row.scenario, r.row.concurrency): r.row for r in rows if not r.shared_state}
    out = []
    for r in rows:
        base = off.get((r.row.scenario, r.row.concurrency))
        if not r.shared_state or base is None:
            continue
        p50, p99 = (
            1000 * (r.row.result.percentile(q) - base.result.percentile(q)) for q in (0.5, 0.99)
        )
        out.append((r.row.scenario, r.row.concurrency, p50, p99))
    return out


def format_replicas(rows: list[ReplicaRow], replicas: int, nodes: int = 1) -> str:
    """The report: what ran, one line per window, then the added latency of shared state."""
    servers = (
        "one nats-server with JetStream on 127.0.0.1, R1 buckets (state.replicas: 1): no"
        " replication between nodes is measured"
        if nodes == 1
        else f"a {nodes}-node nats-server cluster with JetStream on 127.0.0.1, R{nodes} buckets"
        f" (state.replicas: {nodes}), replica n attached to node n mod {nodes}, clients logging"
        " in to each node in turn"
    )
    lines = [
        f"{replicas} replica(s) of `callout serve` in one queue group; {servers}; service and"
        f" server CPU are sums; {os.cpu_count()} CPU(s), shared by every process here.",
        "",
        "| scenario | shared state | conc | auths/s | p50 ms | p99 ms | failed "
        "| CPU ms/auth service | server | loadgen | answered per replica | shed | KV failures |",
        "|" + "---|" * 13,
    ]
    for r in rows:
        d = r.row.as_dict()
        cpu = {name: r.row.cpu_ms_per_auth(name) for name in ("service", "nats-server", "loadgen")}
        lines.append(
            f"| {d['scenario']} | {r.mode} | {d['concurrency']} | {d['auths_per_s']} "
            f"| {d['p50_ms']} | {d['p99_ms']} | {d['failed']} | {_ms(cpu['service'])} "
            f"| {_ms(cpu['nats-server'])} | {_ms(cpu['loadgen'])} "
            f"| {' / '.join(map(str, r.answered))} | {r.shed} | {_kv(r)} |"
        )
    lines.append(
        "\nshed: logins answered `overloaded` at admission (no decision worked on); a refusal"
        " scenario counts them among its refusals, so its rates and latencies mix both."
    )
    added = added_latency(rows)
    if added:
        lines += [
            "",
            "| scenario | conc | added p50 ms (on - off) | added p99 ms (on - off) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {conc} | {p50:+.2f} | {p99:+.2f} |" for name, conc, p50, p99 in added
        ]
    return "\n".join(lines)


def _kv(row: ReplicaRow) -> str:
    if not row.shared_state:
        return "-"
    return f"{row.kv_failures}" + ("" if row.kv_up else " (a replica is on local state)")


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"
