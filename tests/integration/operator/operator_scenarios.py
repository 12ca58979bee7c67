"""The operator's behaviour as scenarios over a Cluster: run on the emulator (integration) and on a
real cluster (e2e). Each function acts like a user (kubectl) and asserts what the user would see.
"""

from __future__ import annotations

import json
import time

from tokenfleet.api.routerconfig import CONFIG_KEY
from tokenfleet.api.v1alpha1 import InferenceFleetSpec, ModelTierSpec
from tokenfleet.gpus import GPU_TYPES, estimate_memory_fit
from tokenfleet.render import tier_endpoint

from tests.integration.operator.operator_harness import EXAMPLES, Cluster, OperatorProcess, wait_for

API = "tokenfleet.io/v1alpha1"
EXAMPLE_TIERS = ("llama-1b-int4", "llama-8b-fp8", "llama-70b-awq")
SETTLE = 1.0  # seconds of quiet in which a converged operator must write nothing


def tier_doc(name: str, parameters_b: float = 1.24, **spec) -> dict:
    body = {"model": {"source": "hf://meta-llama/Llama-3.2-1B-Instruct", "parametersB": parameters_b},
            "quantization": {"weights": "int4"}, "gpu": {"type": "nvidia-l4"}, **spec}
    return {"apiVersion": API, "kind": "ModelTier", "metadata": {"name": name}, "spec": body}


def fleet_doc(name: str, tiers: list[str], cache: str | None = None) -> dict:
    spec = {"tiers": tiers, **({"cachePolicyRef": cache} if cache else {})}
    return {"apiVersion": API, "kind": "InferenceFleet", "metadata": {"name": name}, "spec": spec}


def cache_doc(name: str) -> dict:
    return {"apiVersion": API, "kind": "CachePolicy", "metadata": {"name": name}, "spec": {}}


def reconciled(cluster: Cluster, kind: str, ns: str, name: str) -> dict | None:
    """The object once its Ready condition reflects its current generation (and, where workloads
    start, says True); else None."""
    obj = cluster.get(kind, ns, name)
    if not obj:
        return None
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
    if ready is None or status.get("observedGeneration") != obj["metadata"].get("generation"):
        return None
    if cluster.workloads_start and ready["status"] != "True":
        return None
    return obj


def wait_reconciled(cluster: Cluster, kind: str, ns: str, name: str) -> dict:
    return wait_for(lambda: reconciled(cluster, kind, ns, name), f"{kind} {ns}/{name} reconciled")


def wait_reason(cluster: Cluster, kind: str, ns: str, name: str, reason: str, type_: str = "Ready") -> dict:
    return wait_for(lambda: (c := cluster.condition(kind, ns, name, type_)).get("reason") == reason and c,
                    f"{kind} {ns}/{name} {type_} reason {reason}")


def router_config(cluster: Cluster, ns: str, fleet: str) -> dict | None:
    cm = cluster.get("ConfigMap", ns, f"{fleet}-router")
    return json.loads(cm["data"][CONFIG_KEY]) if cm else None


LAST_HANDLED = "tokenfleet.io/last-handled-configuration"  # kopf's record of the spec it handled last


def _handled(cluster: Cluster, ns: str) -> list[str]:
    """The resources in ``ns`` whose current spec kopf has not finished handling yet."""
    pending = []
    for kind in ("ModelTier", "CachePolicy", "InferenceFleet"):
        for obj in cluster.kube.list("tokenfleet.io/v1alpha1", kind, ns):
            handled = (obj["metadata"].get("annotations") or {}).get(LAST_HANDLED)
            if handled is None or json.loads(handled).get("spec") != obj.get("spec"):
                pending.append(f"{kind}/{obj['metadata']['name']}")
    return pending


def assert_quiet(cluster: Cluster, ns: str, seconds: float = SETTLE) -> None:
    """Nothing in ``ns`` is written while the operator runs with nothing to do.

    First kopf must have finished with the last change: it records the handled spec in an
    annotation after the handler returns, which may come after the effects a test waited for."""
    wait_for(lambda: not _handled(cluster, ns), "kopf to finish handling every change")
    before_versions = cluster.versions(ns)
    before_writes = cluster.write_count(ns)
    time.sleep(seconds)
    after = cluster.versions(ns)
    assert after == before_versions, f"written while quiet: {sorted(k for k in after if after[k] != before_versions.get(k))}"
    if before_writes is not None:
        assert cluster.write_count(ns) == before_writes


def expected_example_children() -> set[tuple[str, str]]:
    workloads = [f"{t}-engine" for t in EXAMPLE_TIERS] + ["shared-cache-cache", "chat-router"]
    return ({("Deployment", w) for w in workloads} | {("Service", w) for w in workloads}
            | {("ConfigMap", "chat-router")})


# ---------------------------------------------------------------------------- scenarios


def examples_make_exactly_their_children(cluster: Cluster, ns: str) -> None:
    cluster.apply(ns, EXAMPLES)
    fleet = wait_reconciled(cluster, "InferenceFleet", ns, "chat")
    wait_for(lambda: cluster.children(ns) == expected_example_children(), "exactly the examples' children")

    owners = {}
    for kind, name in [("ModelTier", t) for t in EXAMPLE_TIERS] + [("CachePolicy", "shared-cache"),
                                                                   ("InferenceFleet", "chat")]:
        owners[name] = wait_reconciled(cluster, kind, ns, name)
    assert not any(obj["metadata"].get("finalizers") for obj in owners.values())  # nothing blocks deletion
    for kind, name in cluster.children(ns):
        ref = cluster.get(kind, ns, name)["metadata"]["ownerReferences"][0]
        assert ref["controller"] and ref["uid"] == owners[ref["name"]]["metadata"]["uid"]
        assert name.startswith(ref["name"] + "-")

    config = router_config(cluster, ns, "chat")
    assert [t["name"] for t in config["tiers"]] == list(EXAMPLE_TIERS)
    assert config["tiers"][0]["url"] == f"http://llama-1b-int4-engine.{ns}.svc:8000/v1"
    assert config["cache"]["url"] == f"http://shared-cache-cache.{ns}.svc:8080"
    assert fleet["status"]["endpoint"] == f"http://chat-router.{ns}.svc:8080/v1"
    tier = owners["llama-70b-awq"]
    assert tier["status"]["gpuMemory"].startswith("model fits on 2 x nvidia-h100")
    assert owners["shared-cache"]["status"]["endpoint"] == f"http://shared-cache-cache.{ns}.svc:8080"
    engine = cluster.get("Deployment", ns, "llama-70b-awq-engine")
    assert engine["spec"]["template"]["spec"]["containers"][0]["args"][:1] == [
        "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4"]
    if cluster.workloads_start:
        wait_for(lambda: (cluster.get("InferenceFleet", ns, "chat")["status"].get("readyTiers") == 3),
                 "all three tiers counted ready")
        wait_reason(cluster, "InferenceFleet", ns, "chat", "AsExpected", "Degraded")
    else:  # no GPUs: the engines stay unready, which is starting (Progressing), not a fault, until their deadline
        wait_reason(cluster, "InferenceFleet", ns, "chat", "TiersStarting", "Progressing")
    assert_quiet(cluster, ns)


def a_spec_change_updates_children_but_not_the_autoscalers_replicas(cluster: Cluster, ns: str) -> None:
    cluster.apply(ns, [tier_doc("small", gpu={"type": "nvidia-l4", "hourlyCostUSD": 0.8}), fleet_doc("f", ["small"])])
    wait_reconciled(cluster, "InferenceFleet", ns, "f")
    price_before = router_config(cluster, ns, "f")["tiers"][0]["outputCostPerMillion"]
    hash_before = cluster.get("Deployment", ns, "f-router")["spec"]["template"]["metadata"]["annotations"]
    cluster.kubectl("scale", "deployment", "small-engine", "--replicas=3", "-n", ns)  # what the autoscaler does

    cluster.merge_patch("ModelTier", ns, "small", {"spec": {"engine": {"maxNumSeqs": 64},
                                                            "gpu": {"hourlyCostUSD": 1.6}}})
    args = wait_for(lambda: "--max-num-seqs" in (a := cluster.get("Deployment", ns, "small-engine")["spec"]["template"]
                                                  ["spec"]["containers"][0]["args"]) and a, "the new vLLM flag")
    assert args[args.index("--max-num-seqs") + 1] == "64"
    assert cluster.get("Deployment", ns, "small-engine")["spec"]["replicas"] == 3  # left to the autoscaler
    price = wait_for(lambda: (p := router_config(cluster, ns, "f")["tiers"][0]["outputCostPerMillion"]) != price_before
                     and p, "the router's price to follow the tier's GPU price")
    tier = cluster.get("ModelTier", ns, "small")
    expected = tier_endpoint("small", ns, ModelTierSpec.model_validate(tier["spec"]),
                             InferenceFleetSpec.model_validate({"tiers": ["small"]}))
    assert price == expected.output_cost_per_million  # the price the tier's new spec implies
    wait_for(lambda: cluster.get("Deployment", ns, "f-router")["spec"]["template"]["metadata"]["annotations"]
             != hash_before, "the router to roll with its new config (config-hash annotation)")
    assert wait_reconciled(cluster, "ModelTier", ns, "small")["status"]["observedGeneration"] == 2

    cluster.merge_patch("ModelTier", ns, "small", {"spec": {"replicas": 2}})  # a pin wins over the autoscaler
    wait_for(lambda: cluster.get("Deployment", ns, "small-engine")["spec"]["replicas"] == 2, "the pinned replicas")
    cluster.kubectl("scale", "deployment", "small-engine", "--replicas=5", "-n", ns)
    wait_for(lambda: cluster.get("Deployment", ns, "small-engine")["spec"]["replicas"] == 2, "drift repaired")
    if cluster.workloads_start:
        wait_for(lambda: cluster.get("ModelTier", ns, "small")["status"].get("readyReplicas") == 2, "status follows")

    cluster.kubectl("delete", "configmap", "f-router", "-n", ns)
    wait_for(lambda: router_config(cluster, ns, "f"), "the deleted router config recreated")
    assert_quiet(cluster, ns)


def broken_resources(cluster: Cluster, ns: str) -> None:
    """A too-large model, an invalid spec and a fleet with a missing tier, all settled."""
    cluster.apply(ns, [tier_doc("huge", parameters_b=405, quantization={"weights": "none"}),
                       tier_doc("odd", gpu={"type": "acme-x1"}),
                       fleet_doc("lost", ["ghost"])])
    wait_reason(cluster, "ModelTier", ns, "huge", "InsufficientGPUMemory")
    wait_reason(cluster, "ModelTier", ns, "odd", "InvalidSpec")
    wait_reason(cluster, "InferenceFleet", ns, "lost", "TierNotFound")
    for name in ("huge", "odd", "lost"):
        wait_for(lambda n=name: cluster.events(ns, n), f"a Warning Event about {name}")


def a_restart_with_nothing_changed_writes_nothing(cluster: Cluster, ns: str, operator: OperatorProcess,
                                                  canary_ns: str) -> None:
    cluster.apply(ns, EXAMPLES)
    broken_resources(cluster, ns)
    for kind, name in [("InferenceFleet", "chat"), ("CachePolicy", "shared-cache")] + [
            ("ModelTier", t) for t in EXAMPLE_TIERS]:
        wait_reconciled(cluster, kind, ns, name)
    if cluster.workloads_start:
        wait_for(lambda: cluster.get("InferenceFleet", ns, "chat")["status"].get("readyTiers") == 3, "ready tiers")
    assert_quiet(cluster, ns)
    versions, events = cluster.versions(ns), len(cluster.events(ns))
    writes = cluster.write_count(ns)

    operator.restart()
    cluster.apply(canary_ns, [tier_doc("canary")])  # proof that the new process is at work
    wait_reconciled(cluster, "ModelTier", canary_ns, "canary")
    time.sleep(SETTLE)  # the resume handlers of the old objects ran alongside the canary's

    assert cluster.versions(ns) == versions
    assert len(cluster.events(ns)) == events  # no Event repeated for a problem already reported
    if writes is not None:
        assert cluster.write_count(ns) == writes


def deleting_a_resource_removes_its_children(cluster: Cluster, ns: str) -> None:
    cluster.apply(ns, [tier_doc("a"), tier_doc("b"), fleet_doc("f", ["a", "b"])])
    wait_reconciled(cluster, "InferenceFleet", ns, "f")
    wait_reconciled(cluster, "ModelTier", ns, "b")
    cluster.kubectl("delete", "modeltier", "b", "-n", ns, "--timeout=20s")  # returns once it is gone
    assert cluster.get("ModelTier", ns, "b") is None
    wait_for(lambda: not {("Deployment", "b-engine"), ("Service", "b-engine")} & cluster.children(ns),
             "the tier's children garbage-collected")
    reason = wait_reason(cluster, "InferenceFleet", ns, "f", "TierNotFound")
    assert "b" in reason["message"]
    assert [t["name"] for t in router_config(cluster, ns, "f")["tiers"]] == ["a", "b"]  # no config with a hole

    cluster.kubectl("delete", "inferencefleet", "f", "-n", ns, "--timeout=20s")
    wait_for(lambda: cluster.children(ns) == {("Deployment", "a-engine"), ("Service", "a-engine")},
             "only the remaining tier's children")


def a_model_too_large_is_reported_while_others_keep_reconciling(cluster: Cluster, ns: str,
                                                                operator: OperatorProcess) -> None:
    cluster.apply(ns, [tier_doc("huge", parameters_b=405, quantization={"weights": "none"}), tier_doc("small"),
                       fleet_doc("f", ["small", "huge"])])
    ready = wait_reason(cluster, "ModelTier", ns, "huge", "InsufficientGPUMemory")
    fit = estimate_memory_fit(parameters_b=405, weights="none", kv_cache="auto", max_model_len=8192,
                              gpu_memory_gib=GPU_TYPES["nvidia-l4"].memory_gib, gpu_count=1,
                              gpu_memory_utilization=0.9)
    assert ready["status"] == "False"
    assert f"needs {fit.required_gib:.1f} GiB" in ready["message"] and f"usable {fit.usable_gib:.1f} GiB" in ready[
        "message"]
    event = wait_for(lambda: cluster.events(ns, "huge", "InsufficientGPUMemory"), "the Warning Event")[0]
    assert event["type"] == "Warning" and event["involvedObject"]["kind"] == "ModelTier"
    assert cluster.get("Deployment", ns, "huge-engine") is None  # it could never start

    wait_reconciled(cluster, "ModelTier", ns, "small")
    wait_reconciled(cluster, "InferenceFleet", ns, "f")
    degraded = wait_reason(cluster, "InferenceFleet", ns, "f", "TiersNotReady", "Degraded")
    assert "huge" in degraded["message"]
    if cluster.workloads_start:
        wait_for(lambda: cluster.get("InferenceFleet", ns, "f")["status"].get("readyTiers") == 1, "one ready tier")
    assert_quiet(cluster, ns)  # a permanent problem is not retried
    assert operator.alive()
    degraded_series = f'tokenfleet_operator_condition{{kind="ModelTier",name="huge",namespace="{ns}",type="Degraded"}}'
    assert _sample(operator, degraded_series) == 1.0  # what TokenfleetResourceDegraded alerts on

    cluster.merge_patch("ModelTier", ns, "huge", {"spec": {"quantization": {"weights": "awq"},
                                                           "gpu": {"type": "nvidia-h100", "count": 8}}})
    wait_reconciled(cluster, "ModelTier", ns, "huge")
    assert cluster.get("Deployment", ns, "huge-engine") is not None
    wait_for(lambda: _sample(operator, degraded_series) == 0.0, "the Degraded series back at 0")
    cluster.kubectl("delete", "modeltier", "huge", "-n", ns, "--timeout=20s")
    wait_for(lambda: _sample(operator, degraded_series) is None, "a deleted tier's series gone")


def _sample(operator: OperatorProcess, series: str) -> float | None:
    """The value of one series on the operator's /metrics, None when it is not there."""
    for line in operator.metrics().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def an_invalid_spec_is_reported_and_counted(cluster: Cluster, ns: str, operator: OperatorProcess) -> None:
    cluster.apply(ns, [tier_doc("odd", gpu={"type": "acme-x1"}), tier_doc("fine")])
    ready = wait_reason(cluster, "ModelTier", ns, "odd", "InvalidSpec")
    assert "spec.gpu.memoryGiB" in ready["message"]
    wait_for(lambda: cluster.events(ns, "odd", "InvalidSpec"), "the Warning Event")
    wait_reconciled(cluster, "ModelTier", ns, "fine")
    assert cluster.get("Deployment", ns, "odd-engine") is None
    assert_quiet(cluster, ns)
    errors = [line for line in operator.metrics().splitlines()
              if line.startswith('tokenfleet_operator_reconcile_errors_total{kind="ModelTier"}')]
    assert errors and float(errors[0].split()[-1]) >= 1

    cluster.merge_patch("ModelTier", ns, "odd", {"spec": {"gpu": {"memoryGiB": 48, "hourlyCostUSD": 1.2}}})
    wait_reconciled(cluster, "ModelTier", ns, "odd")


def a_fleet_recovers_when_its_tier_and_cache_appear(cluster: Cluster, ns: str) -> None:
    cluster.apply(ns, [tier_doc("a"), fleet_doc("f", ["a", "b"], cache="c")])
    ready = wait_reason(cluster, "InferenceFleet", ns, "f", "TierNotFound")
    assert ready["status"] == "False" and "b" in ready["message"]
    wait_for(lambda: cluster.events(ns, "f", "TierNotFound"), "the Warning Event")
    assert router_config(cluster, ns, "f") is None  # no config with a hole

    cluster.apply(ns, [tier_doc("b")])
    wait_reason(cluster, "InferenceFleet", ns, "f", "CachePolicyNotFound")
    wait_for(lambda: cluster.events(ns, "f", "CachePolicyNotFound"), "the Warning Event")
    assert router_config(cluster, ns, "f") is None

    cluster.apply(ns, [cache_doc("c")])
    config = wait_for(lambda: router_config(cluster, ns, "f"), "the router config, once nothing is missing")
    wait_for(lambda: cluster.condition("InferenceFleet", ns, "f").get("reason") not in (
        "TierNotFound", "CachePolicyNotFound"), "the fleet's problem cleared")
    wait_reconciled(cluster, "InferenceFleet", ns, "f")
    assert [t["name"] for t in config["tiers"]] == ["a", "b"]
    assert config["cache"]["url"] == f"http://c-cache.{ns}.svc:8080"
