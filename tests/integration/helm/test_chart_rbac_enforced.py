"""The operator under the chart's own RBAC: localkube enforces the rendered ClusterRole the way the API
server's RBAC authorizer would, and the operator (its ServiceAccount's token) must never be refused.

A render test can only compare the rules with a list; this runs the operator's real calls (kopf's
watches, children, status, Events, the autoscaler's conflict checks) against them. The second test
removes one rule and sees the refusal, so the first cannot pass by enforcing nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import config

from tests.integration.helm.conftest import NAMESPACE, helm_template, one
from tests.integration.operator import operator_scenarios as scenario
from tests.integration.operator.operator_harness import CRDS, Cluster, OperatorProcess, wait_for
from tests.support.procs import free_port, tool
from tokenfleet.kube import Kube
from tokenfleet.localkube import LocalKube

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
PEERING_KINDS = ("ClusterKopfPeering", "KopfPeering")
WATCHED = "rbac-watched"  # the namespace of the watchNamespaces case
MODES = {  # --set items of the chart, per case
    "all-namespaces": (),
    "watch-namespaces": (f"watchNamespaces={{{WATCHED}}}",),
    "peering": ("peering.enabled=true",),
}


def _operator_rbac(drop: tuple[str, str] | None = None, sets: tuple[str, ...] = ()) -> tuple[list[dict], dict]:
    """The chart's RBAC objects (``drop``: remove one (apiGroup, resource) rule) and its ServiceAccount."""
    docs = [d for d in helm_template(sets=sets) if d["kind"] in RBAC_KINDS]
    if drop is not None:
        for doc in docs:
            doc["rules"] = [r for r in doc.get("rules") or []
                            if not (drop[0] in r["apiGroups"] and drop[1] in r["resources"])]
    return docs, one(docs, "ServiceAccount")


def _apply(cluster: Cluster, docs: list[dict]) -> None:
    """Apply as the admin, each namespace's objects with their namespace."""
    namespaces = {d["metadata"].get("namespace", NAMESPACE) for d in docs}
    for ns in sorted(namespaces):
        cluster.apply(ns, [d for d in docs if d["metadata"].get("namespace", NAMESPACE) == ns])


def _refused(emulator: LocalKube) -> list[str]:
    return [f"{r.method} {r.path} -> {r.status}" for r in emulator.requests if r.status in (401, 403)]


@pytest.fixture
def rbac_cluster(tmp_path: Path):
    """An emulator enforcing RBAC (the admin's kubeconfig for the tests, no token), the CRDs applied."""
    if tool("kubectl") is None:
        pytest.skip("kubectl is not installed (scripts/bootstrap.sh --test puts it in .tools/bin)")
    with LocalKube(rbac=True) as emulator:
        emulator.apply_crds(CRDS)
        kubeconfig = emulator.write_kubeconfig(tmp_path / "admin")
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        try:
            cluster = Cluster(kubeconfig=kubeconfig, kube=Kube(api_client), emulator=emulator)
            for name in (NAMESPACE, WATCHED):
                namespace = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"
                cluster.kubectl("apply", "-f", "-", stdin=namespace)
            yield cluster
        finally:
            api_client.close()


def _operator(cluster: Cluster, tmp_path: Path, service_account: dict, env: dict | None = None) -> OperatorProcess:
    token = cluster.emulator.token_for(service_account["metadata"]["namespace"], service_account["metadata"]["name"])
    kubeconfig = cluster.emulator.write_kubeconfig(tmp_path / "operator", token=token)
    # the autoscaler too (its Prometheus is down, so it holds), deciding every second: its conflict checks run
    env = {"TOKENFLEET_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}", "TOKENFLEET_AUTOSCALE_INTERVAL_SECONDS": "1",
           **(env or {})}
    return OperatorProcess(kubeconfig, tmp_path / "operator.log", env=env)


def _peering(cluster: Cluster, sets: tuple[str, ...]) -> str:
    """Apply kopf's peering CRDs and the chart's peering object as the admin; the peering name ('' without)."""
    docs = helm_template(sets=sets)
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition" and d["spec"]["group"] == "kopf.dev"]
    peerings = [d for d in docs if d["kind"] in PEERING_KINDS]
    if not peerings:
        return ""
    _apply(cluster, crds)
    _apply(cluster, peerings)
    return peerings[0]["metadata"]["name"]


@pytest.mark.parametrize("mode", list(MODES))
def test_the_operator_does_all_its_work_under_the_charts_rbac_without_a_refusal(rbac_cluster, tmp_path, mode):
    cluster, sets = rbac_cluster, MODES[mode]
    docs, account = _operator_rbac(sets=sets)
    _apply(cluster, docs)
    peering = _peering(cluster, sets)
    assert bool(peering) is (mode == "peering")
    watch = WATCHED if mode == "watch-namespaces" else ""
    env = {"TOKENFLEET_WATCH_NAMESPACES": watch, "TOKENFLEET_PEERING": peering}
    with _operator(cluster, tmp_path, account, env) as operator:
        ns = watch or cluster.new_namespace("rbac")
        try:
            scenario.examples_make_exactly_their_children(cluster, ns)
        except AssertionError as err:
            raise AssertionError(f"{err}\nrefused: {_refused(cluster.emulator)}\n{operator.log_tail()}") from None
        cluster.apply(ns, [{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                            "metadata": {"name": "hpa"},
                            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                        "name": "llama-1b-int4-engine"},
                                     "minReplicas": 1, "maxReplicas": 3}}])
        conflict = scenario.wait_reason(cluster, "ModelTier", ns, "llama-1b-int4", "HorizontalPodAutoscaler",
                                        "ScalingConflict")
        assert conflict["status"] == "True"
        wait_for(lambda: cluster.events(ns, "llama-1b-int4", "ScalingConflict"), "the ScalingConflict Event")
        assert operator.alive(), operator.log_tail()
    assert _refused(cluster.emulator) == []
    operator_calls = [r for r in cluster.emulator.requests if r.resource == "modeltiers" and r.method == "PATCH"]
    assert operator_calls, "the operator's calls never reached the emulator"
    if peering:  # kopf announced itself in the peering object, under the same rules
        assert any(r.resource == "clusterkopfpeerings" and r.method == "PATCH" and r.status == 200
                   for r in cluster.emulator.requests)


def test_a_rule_missing_from_the_chart_is_a_refusal_the_operator_survives(rbac_cluster, tmp_path):
    cluster = rbac_cluster
    docs, account = _operator_rbac(drop=("", "events"))
    _apply(cluster, docs)
    with _operator(cluster, tmp_path, account) as operator:
        ns = cluster.new_namespace("rbac")
        cluster.apply(ns, [scenario.tier_doc("odd", gpu={"type": "acme-x1"})])  # invalid: a Warning Event
        scenario.wait_reason(cluster, "ModelTier", ns, "odd", "InvalidSpec")
        wait_for(lambda: any("/events" in line and "403" in line for line in _refused(cluster.emulator)),
                 "the Event refused")
        assert operator.alive()


def test_without_update_on_the_owners_finalizers_children_with_blocking_owner_references_are_refused(
        rbac_cluster, tmp_path):
    """The API server's OwnerReferencesPermissionEnforcement: why the chart grants modeltiers/finalizers."""
    cluster = rbac_cluster
    docs, account = _operator_rbac(drop=("tokenfleet.io", "modeltiers/finalizers"))
    _apply(cluster, docs)
    with _operator(cluster, tmp_path, account) as operator:
        ns = cluster.new_namespace("rbac")
        cluster.apply(ns, [scenario.tier_doc("small")])
        ready = scenario.wait_reason(cluster, "ModelTier", ns, "small", "ApplyFailed")
        assert "cannot set blockOwnerDeletion" in ready["message"]
        assert cluster.get("Deployment", ns, "small-engine") is None
        assert operator.alive()
