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
