"""What the demo reports: pod bills over the traffic window, router counters, Deployment status, summary."""

from __future__ import annotations

import pytest

from tokenfleet.demo import results
from tokenfleet.demo.kubelet import Pod, Sample, deployment_status, scrape_target
from tokenfleet.demo.pods import PodProcess
from tokenfleet.demo.report import render
from tokenfleet.demo.traffic import Outcome
from tokenfleet.replay import Request
from tests.unit.test_demo_pods import rendered, tiers  # noqa: F401 - fixtures


@pytest.mark.parametrize("start, end, lo, hi, expected", [
    (0, 10, 2, 8, 6),
    (5, None, 2, 8, 3),  # still running: until the window's end
    (9, 12, 2, 8, 0),
    (0, 1, 2, 8, 0),
    (3, 4, 2, 8, 1),
])
def test_a_pod_is_billed_for_its_time_inside_the_window(start, end, lo, hi, expected):
    assert results.overlap(start, end, lo, hi) == expected


def test_engines_bill_their_gpu_price_and_services_their_cpu_requests(rendered, tiers):  # noqa: F811
    deployments = {o["metadata"]["name"]: o for o in rendered.values() if o["kind"] == "Deployment"}
    lifetimes = [("llama-70b-awq-engine", 0.0, None), ("llama-1b-int4-engine", 0.0, None),
                 ("llama-1b-int4-engine", 10.0, 46.0), ("chat-router", -5.0, None)]
    costs = {p.deployment: p for p in results.pod_costs(lifetimes, deployments, tiers, 0.0, 36.0, 0.05)}
    assert costs["llama-70b-awq-engine"].hourly_usd == pytest.approx(2 * 3.99)
    assert costs["llama-70b-awq-engine"].cost_usd == pytest.approx(7.98 * 36 / 3600)
    assert costs["llama-1b-int4-engine"].pod_seconds == pytest.approx(36 + 26)
    assert costs["chat-router"].kind == "router" and costs["chat-router"].hourly_usd == pytest.approx(0.025)
    assert costs["shared-cache-cache"].pod_seconds == 0 and costs["shared-cache-cache"].hourly_usd == 0.05


METRICS = """# TYPE tokenfleet_router_escalations_total counter
tokenfleet_router_escalations_total{fleet="chat",from_tier="a",to_tier="b",reason="low_confidence"} 7.0
tokenfleet_router_escalations_total{fleet="chat",from_tier="a",to_tier="b",reason="tier_error"} 1.0
# TYPE tokenfleet_router_tokens_total counter
tokenfleet_router_tokens_total{fleet="chat",tier="a",direction="input",tenant="default"} 1000.0
tokenfleet_router_tokens_total{fleet="chat",tier="a",direction="output",tenant="default"} 200.0
# TYPE tokenfleet_router_cache_lookups_total counter
tokenfleet_router_cache_lookups_total{fleet="chat",result="hit_semantic"} 3.0
tokenfleet_router_cache_lookups_total{fleet="chat",result="error"} 2.0
"""


def test_router_counters_are_read_from_its_metrics():
    escalations, tokens, lookups = results.router_counters(METRICS)
    assert escalations == {("a", "b"): 8}
    assert tokens == {"a": (1000.0, 200.0)}
    assert lookups == {"hit_semantic": 3, "error": 2}
    assert results.router_counters("") == ({}, {}, {})


def outcome(i, kind, tier, cache, at, ok=True, p=100, c=10, latency=1.0):
    return Outcome(i, kind, "q", at, sent=at, done=at + latency, ok=ok, tier=tier, cache=cache,
                   prompt_tokens=p, completion_tokens=c)


def test_traffic_figures_count_hits_by_kind_and_answers_by_tier():
    outcomes = [outcome(0, "new", "a", "miss", 0.1), outcome(1, "repeat", "none", "local", 0.5),
                outcome(2, "rephrase", "none", "semantic", 1.2), outcome(3, "followup", "b", "miss", 1.5),
                outcome(4, "repeat", "a", "coalesced", 1.7), outcome(5, "new", "", "", 1.9, ok=False)]
    f = results.traffic_figures(outcomes, ["a", "b"])
    assert f["cache_hits"] == {"local": 1, "exact": 0, "semantic": 1, "coalesced": 1}
    assert f["by_kind"] == {"followup": (1, 0), "new": (1, 0), "rephrase": (1, 1), "repeat": (2, 2)}
    assert f["answered_by"] == {"a": 1, "b": 1}
    assert f["rate"] == [(0, 2, 1), (1, 4, 2)]


def test_a_cache_can_only_be_expected_to_answer_once_an_earlier_ask_came_back():
    def ask(i, kind, question, sent, done, cache="miss", tier="a", ttft=None):
        return Outcome(i, kind, question, sent, sent=sent, done=done, ok=True, tier=tier, cache=cache,
                       ttft=ttft, stream=ttft is not None)

    outcomes = [ask(0, "new", "q1", 0.0, 2.0), ask(1, "rephrase", "q1", 1.0, 4.0),  # q1 still being answered
                ask(2, "rephrase", "q1", 2.5, 2.6, cache="semantic", tier=""),  # after the first answer
                ask(3, "repeat", "q2", 0.5, 3.5, cache="coalesced", tier="b"),  # q2 was never answered before
                ask(4, "followup", "q2", 5.0, 6.0, tier="b", ttft=0.4)]
    f = results.traffic_figures(outcomes, ["a", "b"])
    assert f["after_answer"] == {"rephrase": (1, 1), "repeat": (0, 0)}
    assert f["latency"]["a"] == (3.0, 3.0, 2) and f["latency"]["b"] == (1.0, 1.0, 1)
    assert f["latency"]["cache"][2] == 2 and f["ttft"] == (0.4, 0.4, 1)


def test_the_timeline_is_clipped_to_the_traffic_window():
    samples = [Sample(1.0, "e", 1, 1, 0), Sample(3.0, "e", 1, 1, 1), Sample(12.0, "e", 2, 1, 1), Sample(14.0, "e", 2, 2, 2)]
    assert results.timeline(samples, 5.0, 20.0)["e"] == [(0.0, 1, 1), (7.0, 2, 1), (9.0, 2, 2), (15.0, 2, 2)]
    assert results.replica_story([(0.0, 1, 1), (7.0, 2, 1), (9.0, 2, 2), (12.0, 1, 1)]) == "1 -> 2 (t=7s) -> 1 (t=12s)"


@pytest.mark.parametrize("desired, replicas, updated, ready, available, counts", [
    (2, 2, 2, 2, "True", {"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}),
    (2, 2, 2, 1, "False", {"replicas": 2, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 1,
                           "unavailableReplicas": 1}),
    (0, 0, 0, 0, "True", {}),  # counts at zero are omitted, as the API server does
])
def test_deployment_status_follows_the_pods(desired, replicas, updated, ready, available, counts):
    dep = {"metadata": {"name": "d", "generation": 4}, "spec": {"replicas": desired}}
    status = deployment_status(dep, replicas, updated, ready)
    assert status["observedGeneration"] == 4
    assert {k: v for k, v in status.items() if k not in ("observedGeneration", "conditions")} == counts
    assert next(c for c in status["conditions"] if c["type"] == "Available")["status"] == available


def test_scrape_targets_carry_the_labels_of_a_pod_monitor():
    pod = Pod("llama-1b-int4-engine-abc-12345", "llama-1b-int4-engine", "t", {
        "app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "llama-1b-int4",
        "app.kubernetes.io/component": "engine", "tokenfleet.io/modeltier": "llama-1b-int4"},
        41000, 8000, "http", "vllm", PodProcess(("x",), {}, 41000, "/health"))
    target = scrape_target(pod, "demo")
    assert target["targets"] == ["127.0.0.1:41000"]
    assert target["labels"] == {"namespace": "demo", "pod": pod.name, "container": "vllm",
                                "job": "demo/tokenfleet-workloads", "app_kubernetes_io_name": "vllm",
                                "app_kubernetes_io_instance": "llama-1b-int4", "app_kubernetes_io_component": "engine"}


def test_the_summary_and_report_show_cost_against_the_baseline(tiers):  # noqa: F811
    outcomes = [outcome(i, "new", "llama-1b-int4", "miss", i * 0.5) for i in range(20)]
    requests = [Request(o.sent, o.prompt_tokens, o.completion_tokens) for o in outcomes]
    n, base = results.baseline(requests, tiers["llama-70b-awq"])
    assert n == 1 and base.requests == 20
    run = results.DemoRun(
        seconds=10.0, requests=20, answered=20, tokens=2200, fleet_cost_usd=0.01, baseline_cost_usd=base.cost_usd,
        baseline_desc="llama-70b-awq static x1, no cache", baseline_slo=base.slo_attainment, pods=[],
        tiers=["llama-1b-int4", "llama-8b-fp8", "llama-70b-awq"], lookups={"miss": 20}, escalations={},
        token_split={}, timeline={"llama-1b-int4-engine": [(0.0, 1, 1), (10.0, 1, 1)]},
        **results.traffic_figures(outcomes, ["llama-1b-int4", "llama-8b-fp8", "llama-70b-awq"]))
    text = "\n".join(results.summary_lines(run))
    assert f"tokenfleet ${0.01 / 2200 * 1e6:.4f}" in text
    assert f"baseline ${base.cost_usd / 2200 * 1e6:.4f}" in text
    assert "escalations     0% of the 20 answers" in text
    assert "p95 by where answered: llama-1b-int4 1.00s" in text and "no streamed request" in text
    page = render(run)
    assert page.count("<svg") == 3 and "tokenfleet demo" in page
