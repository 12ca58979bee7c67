"""The real kubectl 1.35 against the emulator: apply, get (printer columns), -o yaml, scale, delete."""

from __future__ import annotations

import yaml

from localkube_support import eventually

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        env: [{name: A, value: "1"}]
"""


def test_kubectl_applies_the_examples_and_prints_printer_columns(kube, kubectl):
    kubectl("apply", "-f", "examples/")
    kube.apply(kube.get_object("tokenfleet.io/v1alpha1", "modeltiers", "default", "llama-8b-fp8") | {
        "status": {"replicas": 2, "desiredReplicas": 3, "costPerMillionTokens": 0.25,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Ok",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    out = kubectl("get", "modeltiers").stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "GPU", "REPLICAS", "DESIRED", "$/1M", "TOK", "AGE"]
    row = next(line.split() for line in out if line.startswith("llama-8b-fp8"))
    assert row[:6] == ["llama-8b-fp8", "True", "nvidia-l40s", "2", "3", "0.25"]
    wide = kubectl("get", "mt", "llama-8b-fp8", "-o", "wide").stdout
    assert "MODEL" in wide and "hf://meta-llama/Llama-3.1-8B-Instruct" in wide
    assert "inferencefleet.tokenfleet.io/chat" in kubectl("get", "tokenfleet").stdout  # category


def test_kubectl_apply_twice_configures_and_get_yaml_round_trips(kube, kubectl):
    assert "deployment.apps/web created" in kubectl("apply", "-f", "-", input=DEPLOY).stdout
    changed = DEPLOY.replace("replicas: 1", "replicas: 2").replace("name: A, value: \"1\"", "name: B, value: \"2\"")
    assert "deployment.apps/web configured" in kubectl("apply", "-f", "-", input=changed).stdout
    obj = yaml.safe_load(kubectl("get", "deployment", "web", "-o", "yaml").stdout)
    assert obj["spec"]["replicas"] == 2 and obj["metadata"]["generation"] == 2
    assert obj["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "B", "value": "2"}]
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    assert "unchanged" in kubectl("apply", "-f", "-", input=changed).stdout


def test_kubectl_apply_updates_a_custom_resource(kube, kubectl):
    kubectl("apply", "-f", "examples/tiers.yaml", "--validate=false")
    text = open("examples/tiers.yaml").read().replace("maxReplicas: 6", "maxReplicas: 5")
    assert "modeltier.tokenfleet.io/llama-8b-fp8 configured" in kubectl("apply", "-f", "-", "--validate=false",
                                                                        input=text).stdout
    stored = kube.get_object("tokenfleet.io/v1alpha1", "modeltiers", "default", "llama-8b-fp8")
    assert stored["spec"]["scaling"]["maxReplicas"] == 5 and stored["metadata"]["generation"] == 2


def test_kubectl_reports_schema_errors_from_the_server(kubectl):
    bad = open("examples/tiers.yaml").read().replace("count: 1", "count: 0", 1)
    done = kubectl("apply", "-f", "-", "--validate=false", input=bad, check=False)
    assert done.returncode != 0 and "spec.gpu.count" in done.stderr and "greater than or equal to 1" in done.stderr


def test_kubectl_scale_and_delete_a_deployment(kube, kubectl):
    kubectl("apply", "-f", "-", input=DEPLOY)
    assert "scaled" in kubectl("scale", "deployment/web", "--replicas=3").stdout
    eventually(lambda: (kube.get_object("apps/v1", "deployments", "default", "web").get("status") or {})
               .get("readyReplicas") == 3)
    assert kubectl("get", "deploy", "web").stdout.split()[5:7] == ["web", "3/3"]
    assert 'deployment.apps "web" deleted' in kubectl("delete", "deployment", "web").stdout
    assert kube.get_object("apps/v1", "deployments", "default", "web") is None
    assert "NotFound" in kubectl("get", "deployment", "web", check=False).stderr


def test_kubectl_label_selectors_select(kubectl):
    maps = "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}}}\ndata: {{a: '1'}}\n"
                   for n in ("one", "two"))
    kubectl("apply", "-f", "-", input=maps)
    kubectl("label", "configmap", "one", "tier=gold")
    names = kubectl("get", "configmaps", "-l", "tier=gold", "-o", "name").stdout.split()
    assert names == ["configmap/one"]
    assert kubectl("get", "configmaps", "-l", "tier notin (gold)", "-o", "name").stdout.split() == ["configmap/two"]


def test_kubectl_validates_on_the_server_and_refuses_unknown_fields(kube, kubectl):
    bad = open("examples/tiers.yaml").read().replace("maxModelLen: 8192", "maxModelLen: 8192\n    typo: 1", 1)
    done = kubectl("apply", "-f", "-", input=bad, check=False)
    assert done.returncode != 0 and 'unknown field "spec.model.typo"' in done.stderr
    assert any(r.query.get("fieldValidation") == "Strict" for r in kube.requests)
    kubectl("apply", "-f", "-", "--validate=false", input=bad)  # without it, the field is pruned
    stored = kube.get_object("tokenfleet.io/v1alpha1", "modeltiers", "default", "llama-1b-int4")
    assert "typo" not in stored["spec"]["model"]


def test_kubectl_explain_reads_the_crd_schema(kubectl):
    out = kubectl("explain", "modeltiers.spec.gpu").stdout
    assert "count\t<integer>" in out and "GPUs per replica" in out


def test_kubectl_waits_for_conditions_and_rollouts(kubectl):
    kubectl("wait", "--for=condition=established", "crd/modeltiers.tokenfleet.io", "--timeout=10s")
    kubectl("apply", "-f", "-", input=DEPLOY)
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=10s").stdout


def test_default_namespaces_may_not_be_deleted(kubectl):
    done = kubectl("delete", "namespace", "default", check=False)
    assert done.returncode != 0 and "Forbidden" in done.stderr


def test_kubectl_applies_the_install_manifests_with_kustomize(kube, kubectl):
    out = kubectl("apply", "-k", "manifests/").stdout
    assert "clusterrolebinding.rbac.authorization.k8s.io/tokenfleet created" in out
    assert "deployment.apps/tokenfleet created" in out
    again = kubectl("apply", "-k", "manifests/").stdout.splitlines()
    assert again and all(line.endswith(" unchanged") for line in again)
