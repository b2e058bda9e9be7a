"""Offline check of deploy/monitoring: the PrometheusRule and the Grafana dashboard.

    python deploy/monitoring/check_monitoring.py [--metrics-only] [RULES.yaml [DASHBOARD.json]]

Parses every PromQL expression with promql-parser (the Prometheus grammar, in Rust), checks
the PrometheusRule's shape (groups, unique alert names, severity, summary, durations) and
lints the dashboard (unique panel ids, grid inside 24 columns, every target on the templated
data source, every variable it uses defined). Prints the metric names the expressions read,
one a line, with ``--metrics-only`` (tests compare them with a running service's /metrics).
Exit 0 when everything holds, 1 with one line per problem otherwise. deploy/check.sh runs it
with the tools venv, where promql-parser and PyYAML are installed.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
_DURATION = re.compile(r"^\d+[smhd]$")
_VARIABLE = re.compile(r"\$\{?(\w+)")
_SEVERITIES = {"critical", "warning", "info"}
_GRID_COLUMNS = 24
_PANEL_TYPES = {"timeseries", "stat", "table", "gauge", "bargauge", "text", "row"}


def _selectors(node: Any) -> Iterator[str]:
    """Metric names of every vector selector in a parsed PromQL expression."""
    name = getattr(node, "name", None)
    if isinstance(name, str) and type(node).__name__ == "VectorSelector":
        yield name
    for attr in ("lhs", "rhs", "expr", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            yield from _selectors(child)
    for child in getattr(node, "args", None) or ():
        yield from _selectors(child)


def _expression(where: str, expr: str, problems: list[str], metrics: set[str]) -> None:
    import promql_parser  # noqa: PLC0415 - only the tools venv has it

    text = _VARIABLE.sub("x", expr) if "$" in expr else expr
    try:
        parsed = promql_parser.parse(text)
    except ValueError as error:
        problems.append(f"{where}: PromQL does not parse: {error}")
        return
    names = set(_selectors(parsed))
    if not names:
        problems.append(f"{where}: reads no metric")
    metrics.update(names)


def check_rules(path: Path, problems: list[str], metrics: set[str]) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    if len(documents) != 1 or documents[0].get("kind") != "PrometheusRule":
        problems.append(f"{path.name}: expected exactly one PrometheusRule")
        return
    rule = documents[0]
    if rule.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.append(f"{path.name}: apiVersion must be monitoring.coreos.com/v1")
    seen: set[str] = set()
    for group in rule.get("spec", {}).get("groups", []):
        for index, item in enumerate(group.get("rules", [])):
            name = item.get("alert") or item.get("record")
            where = f"{path.name}: {group.get('name')}[{index}] {name}"
            if not name:
                problems.append(f"{where}: needs alert or record")
            elif name in seen:
                problems.append(f"{where}: duplicate name")
            seen.add(name or "")
            if "for" in item and not _DURATION.match(str(item["for"])):
                problems.append(f"{where}: for must be a duration like 5m")
            if "alert" in item:
                if item.get("labels", {}).get("severity") not in _SEVERITIES:
                    problems.append(f"{where}: labels.severity must be one of {_SEVERITIES}")
                if not item.get("annotations", {}).get("summary"):
                    problems.append(f"{where}: annotations.summary is missing")
            _expression(where, str(item.get("expr", "")), problems, metrics)
    if not seen:
        problems.append(f"{path.name}: no rules")


def check_dashboard(path: Path, problems: list[str], metrics: set[str]) -> None:
    dashboard = json.loads(path.read_text())
    required = ("title", "uid", "schemaVersion", "panels", "templating")
    problems.extend(f"{path.name}: missing {key}" for key in required if key not in dashboard)
    variables = {v.get("name") for v in dashboard.get("templating", {}).get("list", [])}
    ids: set[int] = set()
    for panel in dashboard.get("panels", []):
        where = f"{path.name}: panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("id") in ids:
            problems.append(f"{where}: duplicate id")
        ids.add(panel.get("id"))
        if panel.get("type") not in _PANEL_TYPES:
            problems.append(f"{where}: unknown type {panel.get('type')!r}")
        grid = panel.get("gridPos", {})
        if (
            not all(isinstance(grid.get(k), int) for k in "xywh")
            or grid["x"] + grid["w"] > _GRID_COLUMNS
        ):
            problems.append(f"{where}: gridPos must be integers within 24 columns")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{where}: no targets")
        for target in targets:
            uid = target.get("datasource", {}).get("uid", "")
            expr = target.get("expr", "")
            used = set(_VARIABLE.findall(uid + " " + expr))
            if not used <= variables:
                problems.append(f"{where}: undefined variables {sorted(used - variables)}")
            if uid != "${datasource}":
                problems.append(f"{where}: targets must use the ${{datasource}} variable")
            _expression(f"{where} {target.get('refId')}", expr, problems, metrics)


def main(argv: list[str]) -> int:
    problems: list[str] = []
    metrics: set[str] = set()
    paths = [Path(arg) for arg in argv if not arg.startswith("--")]
    rules = paths[0] if paths else HERE / "prometheusrule.yaml"
    dashboard = paths[1] if len(paths) > 1 else HERE / "dashboard.json"
    check_rules(rules, problems, metrics)
    check_dashboard(dashboard, problems, metrics)
    if "--metrics-only" in argv:
        print("\n".join(sorted(metrics)))  # noqa: T201 - the output of this tool
    for problem in problems:
        print(problem, file=sys.stderr)  # noqa: T201
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
