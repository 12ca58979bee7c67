"""NetworkPolicies of the chart: routers take clients; engines and caches take only routers and Prometheus."""

from __future__ import annotations

import yaml

from tests.integration.helm.conftest import CHART, NAMESPACE, helm_template, of_kind


def policy_by_name(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in of_kind(docs, "NetworkPolicy")}


def test_engines_and_caches_take_only_the_router_and_prometheus():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    prometheus = values["networkPolicy"]["prometheus"]
    policies = policy_by_name(helm_template(CHART / "ci" / "networkpolicy-values.yaml"))
    assert set(policies) == {(NAMESPACE, "tokenfleet-operator"), ("llm", "tokenfleet-router"),
                             ("llm", "tokenfleet-engine"), ("llm", "tokenfleet-cache")}
    router_peer = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "tokenfleet",
                                                   "app.kubernetes.io/component": "router"}}}
    for component in ("engine", "cache"):
        policy = policies[("llm", f"tokenfleet-{component}")]["spec"]
        assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
        assert policy["policyTypes"] == ["Ingress"]
        assert policy["ingress"] == [{"from": [router_peer, prometheus], "ports": [{"port": "http", "protocol": "TCP"}]}]
    router = policies[("llm", "tokenfleet-router")]["spec"]
    assert router["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}}, prometheus]


def test_routers_take_any_client_by_default_and_policies_follow_watched_namespaces():
    policies = policy_by_name(helm_template(CHART / "ci" / "namespaced-values.yaml"))
    for ns in ("team-a", "team-b"):
        assert "from" not in policies[(ns, "tokenfleet-router")]["spec"]["ingress"][0]
        assert (ns, "tokenfleet-engine") in policies and (ns, "tokenfleet-cache") in policies


def test_policies_select_the_pods_the_operator_creates(operator_workloads):
    policies = of_kind(helm_template(CHART / "ci" / "networkpolicy-values.yaml"), "NetworkPolicy")
    for deployment in of_kind(operator_workloads, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, deployment["metadata"]["name"]
        container_ports = {p["name"] for c in deployment["spec"]["template"]["spec"]["containers"]
                           for p in c.get("ports", [])}
        assert matching[0]["spec"]["ingress"][0]["ports"][0]["port"] in container_ports
