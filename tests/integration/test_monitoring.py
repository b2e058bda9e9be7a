"""deploy/monitoring reads only series a freshly started service exports (at 0 if need be)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from callout.service.app import App
from tests.integration.conftest import ENVIRONMENTS
from tests.integration.environments import Environment
from tests.integration.httpget import http_get
from tests.integration.test_operations import _http

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("deployment", [ENVIRONMENTS[1]], indirect=True, ids=["accounts"]),
]

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
# A selector: metric name, then optional {label="value", ...} with exact matches.
_SELECTOR = re.compile(r"\b(callout_[a-z_]+)(?:\{([^}]*)\})?")
_MATCHER = re.compile(r'(\w+)="([^"$]*)"')


def _expressions() -> list[str]:
    rules = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    exprs = [r["expr"] for group in rules["spec"]["groups"] for r in group["rules"]]
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    variables = dashboard["templating"]["list"]
    exprs += [v["definition"] for v in variables if "definition" in v]
    return exprs


def _selectors() -> set[tuple[str, frozenset[tuple[str, str]]]]:
    found = set()
    for expr in _expressions():
        for name, matchers in _SELECTOR.findall(expr):
            labels = frozenset(_MATCHER.findall(matchers or ""))
            found.add((name, labels))
    return found


async def test_every_series_the_alerts_and_dashboard_read_exists_at_start(
    deployment: Environment,
) -> None:
    """An alert on a series that appears only with its first event misses that event."""
    app = App(deployment.settings(http=_http()))
    await app.start()
    try:
        assert app.http is not None
        status, body = await http_get(app.http.port, "/metrics")
    finally:
        await app.stop()
    assert status == 200
    exported: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            exported.setdefault(sample.name, []).append(sample.labels)
    selectors = _selectors()
    assert len(selectors) > 10  # the extraction found the expressions
    for name, labels in sorted(selectors, key=str):
        assert name in exported, f"{name} is not exported"
        wanted = dict(labels)
        assert any(wanted.items() <= series.items() for series in exported[name]), (
            f"no {name} series with {wanted} at start-up"
        )
