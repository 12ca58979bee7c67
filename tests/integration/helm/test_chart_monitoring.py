"""Dashboard and alerts: valid PromQL (promtool), alerts that fire when they should, only contract metrics."""

from __future__ import annotations

import json
import re
import subprocess

import jsonschema
import pytest
import yaml

from tests.integration.helm.conftest import CHART, helm_template, need, of_kind, one
from tests.support.procs import REPO

MONITORING = CHART / "ci" / "monitoring-values.yaml"
DASHBOARD = CHART / "files" / "dashboards" / "tokenfleet.json"
METRIC = re.compile(r"(?<![\w:])(vllm:[A-Za-z0-9_:]+|tokenfleet_[A-Za-z0-9_]+)")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": ".*", "$fleet": ".*"}


def contract_metrics() -> set[str]:
    """Every metric name docs/metrics.md lists: full vllm: names, and table rows under a `prefix`."""
    names: set[str] = set()
    prefix = ""
    for line in (REPO / "docs" / "metrics.md").read_text().splitlines():
        if line.startswith("## "):
            found = re.search(r"prefix `([a-z_]+)`", line)
            prefix = found.group(1) if found else ""
        elif line.startswith("| `"):
            first = line.split("|")[1].strip().strip("`")
            names.add(prefix + first if prefix else first)
            names.update(re.findall(r"`(vllm:[a-z_:]+)`", line))
    return names


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target and template variable."""
    board = dashboard()
    out = [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            out.append((f"variable {var['name']}", var["query"]["query"]))
    return out


def alert_groups() -> list[dict]:
    return one(helm_template(MONITORING), "PrometheusRule")["spec"]["groups"]


def used_metrics(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def in_contract(name: str, contract: set[str]) -> bool:
    if name in contract:
        return True
    base = re.sub(r"_(bucket|sum|count)$", "", name)  # histogram series
    return base != name and base in contract


def grafana_free(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    return expr


def promtool(*args: str, cwd) -> None:
    """Run promtool in ``cwd``; fail the test with its output unless it succeeds."""
    result = subprocess.run([need("promtool"), *args], capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- the contract


def test_the_contract_parser_reads_every_section():
    contract = contract_metrics()
    for name in ("vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc", "tokenfleet_router_requests_total",
                 "tokenfleet_cache_lookups_total", "tokenfleet_operator_cost_per_million_tokens"):
        assert name in contract


def test_every_metric_the_dashboard_queries_is_in_the_contract():
    contract = contract_metrics()
    for title, expr in dashboard_queries():
        metrics = used_metrics(expr)
        assert metrics, f"{title}: no tokenfleet or vLLM metric in {expr!r}"
        missing = {m for m in metrics if not in_contract(m, contract)}
        assert not missing, f"{title}: {sorted(missing)} not in docs/metrics.md"


def test_every_metric_the_alerts_query_is_in_the_contract():
    contract = contract_metrics()
    for group in alert_groups():
        for rule in group["rules"]:
            missing = {m for m in used_metrics(rule["expr"]) if not in_contract(m, contract)}
            assert used_metrics(rule["expr"]) and not missing, f"{rule['alert']}: {sorted(missing)}"


# --------------------------------------------------------------------------- dashboard


def test_dashboard_shows_cost_cache_escalation_capacity_and_latency():
    titles = {p["title"] for p in dashboard()["panels"]}
    for wanted in ("Cost per 1M tokens by tier", "Blended cost per 1M tokens (engines)", "Spend rate by tier",
                   "Cache hit rate by kind", "Escalation rate", "Replicas against load", "Queue per model",
                   "KV-cache use", "Time to first token (engines)"):
        assert wanted in titles


def test_dashboard_panels_use_the_datasource_variable_and_unique_ids():
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel.get("description"), f"{panel['title']} has no description"


def test_every_dashboard_query_is_valid_promql(tmp_path):
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": grafana_free(expr)}
        for i, (_, expr) in enumerate(dashboard_queries())
        if not expr.startswith("label_values(")
    ]}]}
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump(rules))
    promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)


# --------------------------------------------------------------------------- alerts


def test_alert_rules_pass_promtool_check(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": alert_groups()}))
    promtool("check", "rules", "rules.yaml", cwd=tmp_path)


def test_alerts_cover_budget_tiers_and_cache():
    alerts = {r["alert"] for g in alert_groups() for r in g["rules"]}
    assert {"TokenfleetBudgetBurn", "TokenfleetTierDegraded", "TokenfleetResourceDegraded",
            "TokenfleetCacheDown"} <= alerts
    for group in alert_groups():
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def series(name: str, labels: dict, values: str) -> dict:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


# Each case: input series (1-minute samples), then (time, alert, label sets expected to fire).
ALERT_CASES = [
    (
        [  # "hot" spends 1 USD/s: 1000 + 1 x ~30 days > 10000; "cool" 0.001 USD/s stays under.
            series("tokenfleet_router_budget_spend_usd", {"namespace": "llm", "fleet": "hot"}, "1000x120"),
            series("tokenfleet_router_cost_usd_total", {"namespace": "llm", "fleet": "hot", "tier": "a"}, "0+60x120"),
            series("tokenfleet_router_budget_spend_usd", {"namespace": "llm", "fleet": "cool"}, "1000x120"),
            series("tokenfleet_router_cost_usd_total", {"namespace": "llm", "fleet": "cool", "tier": "a"},
                   "0+0.06x120"),
        ],
        [("20m", "TokenfleetBudgetBurn", []),  # pending: for 30m
         ("100m", "TokenfleetBudgetBurn", [{"namespace": "llm", "fleet": "hot"}])],
    ),
    (
        [  # fleets with their own budget.monthlyUSD: "rich" spends like "hot" under 10M; "tight" like "cool" over 2,000
            series("tokenfleet_router_budget_spend_usd", {"namespace": "llm", "fleet": "rich"}, "1000x120"),
            series("tokenfleet_router_cost_usd_total", {"namespace": "llm", "fleet": "rich", "tier": "a"}, "0+60x120"),
            series("tokenfleet_router_budget_limit_usd", {"namespace": "llm", "fleet": "rich", "pod": "r-1"},
                   "10000000x120"),
            series("tokenfleet_router_budget_spend_usd", {"namespace": "llm", "fleet": "tight"}, "1000x120"),
            series("tokenfleet_router_cost_usd_total", {"namespace": "llm", "fleet": "tight", "tier": "a"},
                   "0+0.06x120"),
            series("tokenfleet_router_budget_limit_usd", {"namespace": "llm", "fleet": "tight", "pod": "t-1"},
                   "2000x120"),
            series("tokenfleet_router_budget_limit_usd", {"namespace": "llm", "fleet": "tight", "pod": "t-2"},
                   "2000x120"),
        ],
        [("100m", "TokenfleetBudgetBurn", [{"namespace": "llm", "fleet": "tight"}])],
    ),
    (
        [  # "big" runs 1 of the 3 replicas it needs; "small" runs what it needs.
            series("tokenfleet_operator_desired_replicas", {"namespace": "llm", "tier": "big"}, "3x40"),
            series("tokenfleet_operator_replicas", {"namespace": "llm", "tier": "big"}, "1x40"),
            series("tokenfleet_operator_desired_replicas", {"namespace": "llm", "tier": "small"}, "2x40"),
            series("tokenfleet_operator_replicas", {"namespace": "llm", "tier": "small"}, "2x40"),
        ],
        [("10m", "TokenfleetTierDegraded", []),
         ("20m", "TokenfleetTierDegraded", [{"namespace": "llm", "tier": "big"}])],
    ),
    (
        [  # tier "huge" stays Degraded (e.g. pinned, too big for its GPU); "blip" only for 5 minutes; "ok" never.
            series("tokenfleet_operator_condition",
                   {"kind": "ModelTier", "namespace": "llm", "name": "huge", "type": "Degraded"}, "1x40"),
            series("tokenfleet_operator_condition",
                   {"kind": "ModelTier", "namespace": "llm", "name": "blip", "type": "Degraded"}, "1x5 0x35"),
            series("tokenfleet_operator_condition",
                   {"kind": "InferenceFleet", "namespace": "llm", "name": "ok", "type": "Degraded"}, "0x40"),
            series("tokenfleet_operator_condition",
                   {"kind": "InferenceFleet", "namespace": "llm", "name": "ok", "type": "Ready"}, "1x40"),
        ],
        [("5m", "TokenfleetResourceDegraded", []),
         ("20m", "TokenfleetResourceDegraded", [{"namespace": "llm", "kind": "ModelTier", "name": "huge"}])],
    ),
    (
        [  # fleet "a": 10% of requests escalate past a failing tier; fleet "b": 1%.
            series("tokenfleet_router_requests_total", {"namespace": "llm", "fleet": "a", "tier": "s", "code": "200"},
                   "0+600x40"),
            series("tokenfleet_router_escalations_total",
                   {"namespace": "llm", "fleet": "a", "from_tier": "s", "to_tier": "l", "reason": "tier_error"},
                   "0+60x40"),
            series("tokenfleet_router_requests_total", {"namespace": "llm", "fleet": "b", "tier": "s", "code": "200"},
                   "0+600x40"),
            series("tokenfleet_router_escalations_total",
                   {"namespace": "llm", "fleet": "b", "from_tier": "s", "to_tier": "l", "reason": "tier_error"},
                   "0+6x40"),
            series("tokenfleet_router_escalations_total",
                   {"namespace": "llm", "fleet": "b", "from_tier": "s", "to_tier": "l", "reason": "low_confidence"},
                   "0+300x40"),
        ],
        [("25m", "TokenfleetTierErrors", [{"namespace": "llm", "fleet": "a", "from_tier": "s"}])],
    ),
    (
        [  # fleet "a": 90% of cache lookups fail; fleet "b": none.
            series("tokenfleet_router_cache_lookups_total", {"namespace": "llm", "fleet": "a", "result": "error"},
                   "0+540x30"),
            series("tokenfleet_router_cache_lookups_total", {"namespace": "llm", "fleet": "a", "result": "miss"},
                   "0+60x30"),
            series("tokenfleet_router_cache_lookups_total", {"namespace": "llm", "fleet": "b", "result": "hit_exact"},
                   "0+600x30"),
            series("tokenfleet_router_cache_lookups_total", {"namespace": "llm", "fleet": "b", "result": "error"},
                   "0x30"),
            series("tokenfleet_cache_store_errors_total", {"namespace": "llm", "pod": "c-1"}, "0+5x30"),
            series("tokenfleet_cache_store_errors_total", {"namespace": "llm", "pod": "c-2"}, "0x30"),
        ],
        [("3m", "TokenfleetCacheDown", []),
         ("15m", "TokenfleetCacheDown", [{"namespace": "llm", "fleet": "a"}]),
         ("15m", "TokenfleetCacheStoreErrors", [{"namespace": "llm", "pod": "c-1"}])],
    ),
]


def test_alerts_fire_exactly_on_the_conditions_they_describe(tmp_path):
    groups = alert_groups()
    severity = {r["alert"]: r["labels"]["severity"] for g in groups for r in g["rules"]}
    for group in groups:  # annotations are checked by `promtool check rules`; here: expressions and `for`
        for rule in group["rules"]:
            rule.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    tests = []
    for inputs, expectations in ALERT_CASES:
        tests.append({
            "interval": "1m",
            "input_series": inputs,
            "alert_rule_test": [
                {"eval_time": at, "alertname": alert,
                 "exp_alerts": [{"exp_labels": {**labels, "severity": severity[alert]}} for labels in firing]}
                for at, alert, firing in expectations
            ],
        })
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}))
    promtool("test", "rules", "tests.yaml", cwd=tmp_path)


def test_alert_thresholds_follow_the_values(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("prometheusRule: {monthlyBudgetUSD: 1234.5, tierDegradedFor: 7m, resourceDegradedFor: 3m}\n")
    docs = helm_template(MONITORING, values)
    rules = {r["alert"]: r for g in one(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}
    budget = rules["TokenfleetBudgetBurn"]["expr"]
    assert "> 1234.5 unless on (namespace, fleet) tokenfleet_router_budget_limit_usd" in budget
    assert rules["TokenfleetTierDegraded"]["for"] == "7m" and rules["TokenfleetResourceDegraded"]["for"] == "3m"


# --------------------------------------------------------------------------- Prometheus Operator objects

# The subset of the monitoring.coreos.com/v1 fields the chart writes (names as in the
# prometheus-operator API reference); additionalProperties=false catches a misspelt field.
SELECTOR = {"type": "object", "additionalProperties": False, "required": ["matchLabels"],
            "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}}
NAMESPACES = {"type": "object", "additionalProperties": False,
              "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}}
ENDPOINT = {"type": "object", "additionalProperties": False, "required": ["port"],
            "properties": {"port": {"type": "string"}, "path": {"type": "string"}, "honorLabels": {"type": "boolean"},
                           "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}}}
SHAPES = {
    "ServiceMonitor": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
                       "properties": {"selector": SELECTOR, "namespaceSelector": NAMESPACES,
                                      "endpoints": {"type": "array", "minItems": 1, "items": ENDPOINT}}},
    "PodMonitor": {"type": "object", "additionalProperties": False, "required": ["selector", "podMetricsEndpoints"],
                   "properties": {"selector": SELECTOR, "namespaceSelector": NAMESPACES,
                                  "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                                  "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": ENDPOINT}}},
    "PrometheusRule": {"type": "object", "additionalProperties": False, "required": ["groups"], "properties": {
        "groups": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "rules"],
            "properties": {"name": {"type": "string"}, "rules": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["alert", "expr"],
                "properties": {"alert": {"type": "string"}, "expr": {"type": "string"}, "for": {"type": "string"},
                               "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                               "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}}},
}


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_prometheus_operator_objects_have_the_documented_shape(kind):
    obj = one(helm_template(MONITORING), kind)
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    jsonschema.validate(obj["spec"], SHAPES[kind])
    assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_service_monitor_scrapes_the_operator_metrics_port():
    docs = helm_template(MONITORING)
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    # tokenfleet_operator_* series carry each tier's `namespace`; without honorLabels Prometheus
    # would overwrite it with the operator's own namespace and every tier would look alike.
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True


def test_pod_monitor_scrapes_every_workload_the_operator_creates(operator_workloads):
    monitor = one(helm_template(MONITORING), "PodMonitor")["spec"]
    deployments = of_kind(operator_workloads, "Deployment")
    assert {d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments} == {
        "engine", "cache", "router"}
    for deployment in deployments:
        template = deployment["spec"]["template"]
        assert monitor["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        assert monitor["podMetricsEndpoints"][0]["port"] in ports, deployment["metadata"]["name"]
        for label in monitor["podTargetLabels"]:
            assert label in template["metadata"]["labels"]
    assert monitor["namespaceSelector"] == {"any": True}
    namespaced = one(helm_template(MONITORING, sets=("watchNamespaces={a,b}",)), "PodMonitor")["spec"]
    assert namespaced["namespaceSelector"] == {"matchNames": ["a", "b"]}


def test_the_dashboard_configmap_is_what_grafana_sidecars_load():
    docs = helm_template(CHART / "ci" / "monitoring-values.yaml")
    cm = one(docs, "ConfigMap")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "tokenfleet"}
    shipped = json.loads((CHART / "files" / "dashboards" / "tokenfleet.json").read_text())
    assert json.loads(cm["data"]["tokenfleet.json"]) == shipped
