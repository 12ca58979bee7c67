"""`tokenfleet render`: prints valid Kubernetes objects for the examples, exits non-zero naming bad fields."""

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.support.procs import tokenfleet_cmd

REPO = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.35.0"


def render(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(tokenfleet_cmd("render", *args), input=stdin, capture_output=True, text=True, cwd=REPO)


@pytest.fixture(scope="module")
def example_objects() -> list[dict]:
    result = render("-f", "examples/")
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def test_examples_render_to_the_expected_children(example_objects):
    names = {(o["kind"], o["metadata"]["name"]) for o in example_objects}
    assert names == {
        ("Deployment", "llama-1b-int4-engine"), ("Service", "llama-1b-int4-engine"),
        ("Deployment", "llama-8b-fp8-engine"), ("Service", "llama-8b-fp8-engine"),
        ("Deployment", "llama-70b-awq-engine"), ("Service", "llama-70b-awq-engine"),
        ("Deployment", "shared-cache-cache"), ("Service", "shared-cache-cache"),
        ("ConfigMap", "chat-router"), ("Deployment", "chat-router"), ("Service", "chat-router"),
    }


def test_every_rendered_object_passes_strict_kubernetes_validation(example_objects):
    for obj in example_objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_strict_validation_would_catch_an_unknown_field(example_objects):
    broken = yaml.safe_load(yaml.safe_dump(example_objects[0]))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePolicy"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_every_container_is_locked_down(example_objects):
    for obj in example_objects:
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}


BAD = """
apiVersion: tokenfleet.io/v1alpha1
kind: ModelTier
metadata: {name: broken}
spec:
  model: {source: org/m, parametersB: 8}
  quantization: {weights: fp4}
  gpu: {count: 0}
"""


def test_invalid_spec_exits_non_zero_naming_each_field():
    result = render("-f", "-", stdin=BAD)
    assert result.returncode == 1 and result.stdout == ""
    assert "ModelTier broken: spec.quantization.weights:" in result.stderr
    assert "ModelTier broken: spec.gpu.count:" in result.stderr


def test_fleet_with_a_tier_missing_from_the_input_is_an_error(tmp_path):
    (tmp_path / "fleet.yaml").write_text((REPO / "examples" / "fleet.yaml").read_text())
    result = render("-f", str(tmp_path))
    assert result.returncode == 1
    assert "spec.tiers: ModelTier not found: llama-1b-int4, llama-8b-fp8, llama-70b-awq" in result.stderr


def test_namespace_flag_applies_to_resources_without_one():
    result = render("-f", "examples/tiers.yaml", "-n", "ml")
    assert {o["metadata"]["namespace"] for o in yaml.safe_load_all(result.stdout)} == {"ml"}


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "tokenfleet", "--help"], capture_output=True, text=True).stdout
    for command in ("demo", "plan", "render", "crds", "operator", "router", "cache", "emulate-engine"):
        assert command in out


EVERY_OPTION = """
apiVersion: tokenfleet.io/v1alpha1
kind: ModelTier
metadata: {name: gated, namespace: ml, uid: 11111111-1111-1111-1111-111111111111}
spec:
  model: {source: hf://meta-llama/Llama-3.1-8B-Instruct, servedName: llama, parametersB: 8,
          hfTokenSecretRef: {name: hf, key: token}}
  quantization: {weights: fp8, kvCache: fp8}
  gpu: {type: acme-x1, count: 2, memoryGiB: 48, hourlyCostUSD: 1.5, nodeSelector: {pool: gpu}}
  engine: {maxNumSeqs: 64, prefixCaching: false, extraArgs: [--enforce-eager],
           resources: {requests: {cpu: "8", memory: 64Gi}, limits: {memory: 96Gi}}}
  replicas: 2
---
apiVersion: tokenfleet.io/v1alpha1
kind: CachePolicy
metadata: {name: shared, namespace: ml, uid: 22222222-2222-2222-2222-222222222222}
spec:
  store: {type: redis, redisSecretRef: {name: redis, key: url}}
  replicas: 3
---
apiVersion: tokenfleet.io/v1alpha1
kind: InferenceFleet
metadata: {name: chat, namespace: ml, uid: 33333333-3333-3333-3333-333333333333}
spec:
  tiers: [gated]
  cachePolicyRef: shared
  tokens: {maxOutputTokens: {gated: 256}}
  auth: {apiKeysSecretRef: {name: keys, key: lines}}
"""


def test_every_optional_branch_renders_objects_that_pass_strict_validation():
    from tokenfleet.render import render_documents

    objects = render_documents(list(yaml.safe_load_all(EVERY_OPTION)))
    assert len(objects) == 7
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        assert obj["metadata"]["ownerReferences"][0]["uid"].startswith(("1", "2", "3"))


REFUSED_BY_THE_OPERATOR = """
apiVersion: tokenfleet.io/v1alpha1
kind: ModelTier
metadata: {name: huge}
spec:
  model: {source: org/m, parametersB: 405}
  gpu: {type: nvidia-l4}
---
apiVersion: tokenfleet.io/v1alpha1
kind: ModelTier
metadata: {name: odd}
spec:
  model: {source: org/m, parametersB: 1}
  gpu: {type: acme-x1}
---
apiVersion: tokenfleet.io/v1alpha1
kind: ModelTier
metadata: {name: fine}
spec:
  model: {source: org/m, parametersB: 1}
"""


def test_what_the_operator_would_not_create_is_an_error_for_each_resource():
    result = render("-f", "-", stdin=REFUSED_BY_THE_OPERATOR)
    assert result.returncode == 1 and result.stdout == ""
    assert "ModelTier huge: spec.gpu: model does not fit on 1 x nvidia-l4: needs" in result.stderr
    assert "InsufficientGPUMemory" in result.stderr
    assert "ModelTier odd: spec.gpu.memoryGiB:" in result.stderr  # both reported, not only the first
    assert "fine" not in result.stderr
