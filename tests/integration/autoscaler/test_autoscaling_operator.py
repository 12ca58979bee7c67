"""The real operator scales engine Deployments in the API emulator from real Prometheus scraping engine emulators."""

from __future__ import annotations

import time

import yaml

from tests.integration.autoscaler.conftest import MODEL, decisions, engines, load, metric, scraped, speed_up
from tests.integration.operator.operator_harness import wait_for
from tests.support.procs import stop
from tokenfleet import API_VERSION

WAIT = 30.0  # deadline of each wait (Prometheus needs a few scrapes), not a timing assertion
QUIET = 2.5  # seconds (two decisions and more) during which nothing may change
DAEMON_ENDED = "Daemon 'autoscaler' succeeded"  # kopf's log line when a daemon returns


def modeltier(name: str, **scaling) -> dict:
    return {
        "apiVersion": API_VERSION, "kind": "ModelTier", "metadata": {"name": name},
        "spec": {
            "model": {"source": "hf://meta-llama/Llama-3.1-8B-Instruct", "servedName": MODEL, "parametersB": 8},
            "gpu": {"type": "nvidia-l4"},
            "scaling": {"minReplicas": 1, "maxReplicas": 4, "scaleDownStabilization": "2s",
                        "scaleDownCooldown": "1s", **scaling},
        },
    }


def replicas(cluster, ns: str, tier: str) -> int | None:
    dep = cluster.get("Deployment", ns, f"{tier}-engine")
    return None if dep is None else dep["spec"].get("replicas")


def status(cluster, ns: str, tier: str) -> dict:
    return (cluster.get("ModelTier", ns, tier) or {}).get("status") or {}


def set_replicas(cluster, ns: str, tier: str, count: int) -> None:
    """What another actor (a person, an HPA) does to the engine Deployment."""
    cluster.kube.patch("apps/v1", "Deployment", ns, f"{tier}-engine", {"spec": {"replicas": count}})


def deciding(cluster, ns: str, tier: str) -> None:
    """Wait until the autoscaler has decided with signals from Prometheus (its status fields appear)."""
    wait_for(lambda: "tokensPerSecond" in status(cluster, ns, tier), f"{tier}'s first decision", WAIT)


def test_queued_requests_on_the_engines_scale_the_deployment_up(cluster, ns, operator, prometheus_port, tmp_path):
    with engines(tmp_path, 2, "--max-num-seqs", "2") as addresses, scraped(tmp_path, prometheus_port, ns, addresses):
        cluster.apply(ns, [modeltier("chat", maxQueuePerReplica=2)])
        deciding(cluster, ns, "chat")
        assert replicas(cluster, ns, "chat") == 1 and status(cluster, ns, "chat")["desiredReplicas"] == 1
        for address in addresses:  # 2 running + 6 waiting on each of the 2 replicas
            load(address, 8, max_tokens=400)
        wait_for(lambda: replicas(cluster, ns, "chat") == 4, "a scale-up to maxReplicas", WAIT)
        st = wait_for(lambda: (s := status(cluster, ns, "chat")).get("replicas") == 4 and s, "status.replicas", WAIT)
        assert st["lastScale"]["reason"] == "QueueHigh" and st["lastScale"]["to"] == 4
        assert st["desiredReplicas"] == 4 and st["queueDepth"] > 4 and st["tokensPerSecond"] > 0
        assert st["costPerMillionTokens"] > 0
        scaled = cluster.events(ns, "chat", "ScaledUp")
        assert scaled and all(e["type"] == "Normal" and "QueueHigh" in e["message"] for e in scaled)
        assert decisions(operator, ns, "chat", "QueueHigh") >= 1
        series = {name: metric(operator, f"tokenfleet_operator_{name}", namespace=ns, tier="chat")
                  for name in ("desired_replicas", "replicas", "hourly_cost_usd", "cost_per_million_tokens")}
        assert series["desired_replicas"] == 4 and series["hourly_cost_usd"] == 4 * 0.80
        assert series["replicas"] is not None and series["cost_per_million_tokens"] > 0
        table = cluster.kubectl("get", "modeltiers", "-n", ns)
        header, row = table.splitlines()[:2]
        assert "REPLICAS" in header and "$/1M TOK" in header
        cells = dict(zip(header.split(), row.split()))
        assert cells["REPLICAS"] == "4" and cells["DESIRED"] == "4" and float(cells["$/1M"]) > 0
        for address in addresses:
            speed_up(address, 1000)  # let the load drain before the engines stop


def test_stopping_prometheus_freezes_replicas_until_it_answers_again(cluster, ns, operator, prometheus_port, tmp_path):
    with engines(tmp_path, 1) as addresses:
        with scraped(tmp_path, prometheus_port, ns, addresses) as prom:
            cluster.apply(ns, [modeltier("frozen")])
            deciding(cluster, ns, "frozen")
            stop(prom)
        held = decisions(operator, ns, "frozen", "MetricsUnavailable")
        set_replicas(cluster, ns, "frozen", 3)  # idle engines: with signals, this would come back to 1
        wait_for(lambda: decisions(operator, ns, "frozen", "MetricsUnavailable") >= held + 3,
                 "three decisions without Prometheus", WAIT)
        assert replicas(cluster, ns, "frozen") == 3
        assert not cluster.events(ns, "frozen", "ScaledDown")
        with scraped(tmp_path, prometheus_port, ns, addresses):
            wait_for(lambda: replicas(cluster, ns, "frozen") == 1, "the scale-down once Prometheus answers", WAIT)
        assert status(cluster, ns, "frozen")["lastScale"]["reason"] == "Underused"


KEDA_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {"group": "keda.sh", "scope": "Namespaced",
             "names": {"plural": "scaledobjects", "singular": "scaledobject", "kind": "ScaledObject"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def conflict(cluster, ns: str, tier: str) -> dict:
    return cluster.condition("ModelTier", ns, tier, "ScalingConflict")


def test_an_hpa_or_scaledobject_on_the_deployment_makes_the_autoscaler_yield_and_a_pin_wins(
        cluster, ns, operator, prometheus_port, tmp_path):
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shared-engine"}
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "cpu"},
           "spec": {"scaleTargetRef": target, "minReplicas": 1, "maxReplicas": 5}}
    scaled_object = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "queue"},
                     "spec": {"scaleTargetRef": {"name": "shared-engine"}, "triggers": []}}
    crd = tmp_path / "keda-crd.yaml"
    crd.write_text(yaml.safe_dump(KEDA_CRD))
    cluster.emulator.apply_crds(crd)
    with engines(tmp_path, 1) as addresses, scraped(tmp_path, prometheus_port, ns, addresses):
        cluster.apply(ns, [modeltier("shared")])
        deciding(cluster, ns, "shared")
        assert conflict(cluster, ns, "shared") == {}  # no conflict, no condition
        for other, reason in ((hpa, "HorizontalPodAutoscaler"), (scaled_object, "ScaledObject")):
            cluster.apply(ns, [other])
            wait_for(lambda: conflict(cluster, ns, "shared").get("status") == "True", f"ScalingConflict ({reason})",
                     WAIT)
            assert conflict(cluster, ns, "shared")["reason"] == reason
            if other is hpa:
                set_replicas(cluster, ns, "shared", 3)  # the other autoscaler's choice
                time.sleep(QUIET)
                assert replicas(cluster, ns, "shared") == 3
            cluster.kubectl("delete", "-n", ns, other["kind"].lower(), other["metadata"]["name"])
            wait_for(lambda: conflict(cluster, ns, "shared").get("reason") == "NoConflict", "the conflict's end", WAIT)
            wait_for(lambda: replicas(cluster, ns, "shared") == 1, "the autoscaler taking over again", WAIT)
        warnings = cluster.events(ns, "shared", "ScalingConflict")
        assert {e["type"] for e in warnings} == {"Warning"} and len(warnings) == 2
        cluster.merge_patch("ModelTier", ns, "shared", {"spec": {"replicas": 2}})
        wait_for(lambda: replicas(cluster, ns, "shared") == 2, "the pinned count", WAIT)
        time.sleep(QUIET)
        assert replicas(cluster, ns, "shared") == 2  # idle engines, yet the pin wins


def test_an_autoscaled_tier_carries_no_finalizer_and_deletes_even_with_the_operator_gone(
        cluster, ns, operator, prometheus_port, tmp_path):
    """Argo CD and Flux prune the operator and the tiers together: a finalizer would leave the tiers stuck."""
    with engines(tmp_path, 1) as addresses, scraped(tmp_path, prometheus_port, ns, addresses):
        cluster.apply(ns, [modeltier("pruned")])
        deciding(cluster, ns, "pruned")
        assert not cluster.get("ModelTier", ns, "pruned")["metadata"].get("finalizers")
        ended = operator.log_tail(1_000_000).count(DAEMON_ENDED)
        cluster.kubectl("delete", "-n", ns, "modeltier", "pruned", "--wait=false")
        wait_for(lambda: cluster.get("ModelTier", ns, "pruned") is None, "the tier's deletion", WAIT)
        wait_for(lambda: operator.log_tail(1_000_000).count(DAEMON_ENDED) > ended, "its autoscaler daemon's end", WAIT)
        assert "Traceback" not in operator.log_tail(1_000_000)
