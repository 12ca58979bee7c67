"""High availability as the chart installs it: two operator processes peer through kopf, one acts, and the
other takes over when the active one goes (charts/tokenfleet: replicaCount > 1)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.integration.operator.operator_harness import Cluster, OperatorProcess, emulated_cluster, wait_for
from tests.integration.operator.operator_scenarios import tier_doc, wait_reconciled
from tests.support.procs import REPO, tool


def chart_peering_objects() -> list[dict]:
    """kopf's peering CRDs and the ClusterKopfPeering object, as `helm template` renders them for two replicas."""
    helm = tool("helm")
    if helm is None:
        pytest.skip("helm is not installed (scripts/bootstrap.sh --test puts it in .tools/bin)")
    out = subprocess.run([helm, "template", "tokenfleet", str(REPO / "charts" / "tokenfleet"), "--set", "replicaCount=2"],
                         capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d and d["apiVersion"].startswith("kopf.dev")
            or d and d["kind"] == "CustomResourceDefinition" and d["spec"]["group"] == "kopf.dev"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    objects = chart_peering_objects()
    with emulated_cluster(tmp_path_factory.mktemp("peering")) as emulated:
        for obj in sorted(objects, key=lambda o: o["kind"] != "CustomResourceDefinition"):  # CRDs first
            emulated.emulator.apply(obj)
        yield emulated


def test_peered_operators_keep_reconciling_whichever_of_them_goes(cluster, tmp_path):
    """Whichever process is active, one of the two stops below hits it: the other one must take over."""
    peering = next(o for o in chart_peering_objects() if o["kind"] == "ClusterKopfPeering")["metadata"]["name"]
    env = {"TOKENFLEET_PEERING": peering}
    a = OperatorProcess(cluster.kubeconfig, tmp_path / "a.log", env)
    b = OperatorProcess(cluster.kubeconfig, tmp_path / "b.log", env)
    try:
        a.start(), b.start()
        cluster.apply("default", [tier_doc("both-running")])
        wait_reconciled(cluster, "ModelTier", "default", "both-running")
        a.stop()  # if a was the active one, b takes over
        cluster.apply("default", [tier_doc("b-alone")])
        wait_reconciled(cluster, "ModelTier", "default", "b-alone")
        a.start()
        b.stop()  # if b was the active one, the restarted a takes over
        cluster.apply("default", [tier_doc("a-alone")])
        wait_reconciled(cluster, "ModelTier", "default", "a-alone")
        assert a.alive()
    finally:
        a.stop(), b.stop()
    assert "Traceback" not in a.log_tail(200_000) + b.log_tail(200_000)
