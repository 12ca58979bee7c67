"""The kustomize base in manifests/ installs what the chart installs, and stays generated from it."""

from __future__ import annotations

import os
import sys

import kubernetes_validate
import pytest
import yaml

from tests.integration.helm.conftest import LOADER, NAMESPACE, lockdown_problems, need, of_kind, one, run
from tests.support.procs import REPO

HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


@pytest.fixture(scope="module")
def kustomized() -> list[dict]:
    result = run([need("kubectl"), "kustomize", "manifests/"])
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.load_all(result.stdout, Loader=LOADER) if d]


def without_helm(labels: dict) -> dict:
    return {k: v for k, v in labels.items() if k not in HELM_ONLY_LABELS}


def by_name(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, kind)}


def test_manifests_are_regenerated_from_the_chart():
    result = run([sys.executable, "manifests/generate.py", "--check"])
    assert result.returncode == 0, f"run `python manifests/generate.py`:\n{result.stdout}{result.stderr}"


def test_kustomize_base_has_the_same_crds_as_crds_folder(kustomized):
    ours = {name: crd["spec"] for name, crd in by_name(kustomized, "CustomResourceDefinition").items()}
    generated = [yaml.safe_load(p.read_text()) for p in (REPO / "crds").glob("*.yaml")]
    assert ours == {crd["metadata"]["name"]: crd["spec"] for crd in generated}


def test_kustomize_base_and_chart_grant_the_same_rbac(kustomized, default_render):
    for kind in ("ClusterRole", "Role"):
        ours, chart = by_name(kustomized, kind), by_name(default_render, kind)
        assert set(ours) == set(chart)
        for name in ours:
            assert ours[name]["rules"] == chart[name]["rules"], name
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        ours, chart = by_name(kustomized, kind), by_name(default_render, kind)
        assert {n: (b["roleRef"], b["subjects"]) for n, b in ours.items()} == \
               {n: (b["roleRef"], b["subjects"]) for n, b in chart.items()}


def test_kustomize_base_runs_the_same_operator_deployment(kustomized, default_render):
    ours, chart = one(kustomized, "Deployment"), one(default_render, "Deployment")
    assert ours["metadata"]["namespace"] == chart["metadata"]["namespace"] == NAMESPACE
    assert ours["spec"] == chart["spec"]
    assert without_helm(ours["metadata"]["labels"]) == without_helm(chart["metadata"]["labels"])
    assert one(kustomized, "ServiceAccount")["metadata"]["name"] == one(default_render, "ServiceAccount")["metadata"]["name"]
    assert one(kustomized, "Service")["spec"] == one(default_render, "Service")["spec"]


def test_kustomize_base_installs_nothing_more_than_the_chart_and_a_namespace(kustomized, default_render):
    def kinds(docs):
        return sorted((d["kind"], d["metadata"]["name"]) for d in docs)

    assert kinds([d for d in kustomized if d["kind"] != "Namespace"]) == kinds(default_render)
    namespace = one(kustomized, "Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in kustomized:
        assert not [k for k in doc["metadata"].get("labels", {}) if k.startswith("helm.sh/")], doc["kind"]


def test_kustomize_base_is_valid_and_locked_down(kustomized):
    for doc in kustomized:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    assert lockdown_problems(one(kustomized, "Deployment")["spec"]["template"]["spec"]) == []


def test_an_overlay_can_move_the_operator_to_another_namespace(tmp_path):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": "platform-llm", "resources": [os.path.relpath(REPO / "manifests", overlay)],
    }))
    result = run([need("kubectl"), "kustomize", str(overlay)])
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.load_all(result.stdout, Loader=LOADER) if d]
    assert one(docs, "Deployment")["metadata"]["namespace"] == "platform-llm"
    assert one(docs, "ClusterRoleBinding", "tokenfleet")["subjects"][0]["namespace"] == "platform-llm"



def test_kubectl_apply_k_installs_the_operator_and_its_api(tmp_path):
    """`kubectl apply -k manifests/` on an empty API server (the local emulator): CRDs, RBAC and the
    operator land, and the examples are then accepted as tokenfleet resources."""
    from tokenfleet.localkube import LocalKube

    with LocalKube() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        kubectl = [need("kubectl"), "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]
        applied = run([*kubectl, "apply", "--server-side", "-k", "manifests/"])
        assert applied.returncode == 0, applied.stderr
        assert kube.get_object("apps/v1", "deployments", NAMESPACE, "tokenfleet") is not None
        assert kube.get_object("rbac.authorization.k8s.io/v1", "clusterrolebindings", None, "tokenfleet") is not None
        examples = run([*kubectl, "apply", "--server-side", "-f", "examples/", "-n", "default"])
        assert examples.returncode == 0, examples.stderr
        tiers = run([*kubectl, "get", "modeltiers", "-n", "default", "-o", "name"])
        assert tiers.stdout.split() == ["modeltier.tokenfleet.io/llama-1b-int4", "modeltier.tokenfleet.io/llama-70b-awq",
                                        "modeltier.tokenfleet.io/llama-8b-fp8"]
        bad = yaml.safe_load((REPO / "examples" / "tiers.yaml").read_text().split("---")[0])
        bad["metadata"]["name"] = "bad"
        bad["spec"]["quantization"]["weights"] = "int3"
        refused = run([*kubectl, "apply", "--server-side", "-n", "default", "-f", "-"], input=yaml.safe_dump(bad))
        assert refused.returncode != 0 and "int3" in refused.stderr, "the installed CRD schema must refuse it"
