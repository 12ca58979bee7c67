"""The CRDs in crds/ are exactly what the models generate, and are structural schemas with docs."""

from pathlib import Path

import pytest
import yaml

from tokenfleet.api.v1alpha1 import KINDS
from tokenfleet.crds import render_crds

REPO = Path(__file__).resolve().parents[2]
CRDS = {name: yaml.safe_load(text) for name, text in render_crds().items()}


def test_committed_crds_match_the_models():
    for name, text in render_crds().items():
        committed = (REPO / "crds" / name).read_text()
        assert committed == text, f"crds/{name} is stale: run `tokenfleet crds` and commit"
    assert sorted(p.name for p in (REPO / "crds").glob("*.yaml")) == sorted(render_crds())


def _walk(node, path="schema"):
    yield path, node
    for key in ("properties",):
        for name, child in (node.get(key) or {}).items():
            yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("name", sorted(CRDS))
def test_schema_is_structural(name):
    schema = CRDS[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text and "$defs" not in text and "const:" not in text
    for path, node in _walk(schema):
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
        for variant in node.get("anyOf", []):
            assert not {"type", "description", "default", "nullable"} & set(variant), path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path


@pytest.mark.parametrize("name", sorted(CRDS))
def test_every_spec_and_status_field_has_a_description(name):
    schema = CRDS[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for root in ("spec", "status"):
        for path, node in _walk(schema["properties"][root], root):
            if path.endswith("{}") or path.endswith("[]"):
                continue
            assert node.get("description"), f"{name}: {path} has no description (kubectl explain)"


@pytest.mark.parametrize("info", KINDS.values(), ids=lambda i: i.kind)
def test_crd_names_columns_and_subresources(info):
    crd = CRDS[f"tokenfleet.io_{info.plural}.yaml"]
    names = crd["spec"]["names"]
    assert names["kind"] == info.kind and names["categories"] == ["tokenfleet"] and names["shortNames"]
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Ready", "Age"} <= columns


def test_modeltier_columns_show_replicas_and_cost():
    version = CRDS["tokenfleet.io_modeltiers.yaml"]["spec"]["versions"][0]
    paths = {c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert {".status.replicas", ".status.costPerMillionTokens"} <= paths


def test_min_le_max_replicas_is_a_cel_rule_in_the_crd():
    spec = CRDS["tokenfleet.io_modeltiers.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = spec["properties"]["spec"]["properties"]["scaling"]["x-kubernetes-validations"]
    assert {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"} in rules


# The field paths issue 2 makes public API: they must stay exactly as named.
PUBLIC_PATHS = {
    "ModelTier": [
        "model.source", "model.servedName", "model.parametersB", "model.maxModelLen",
        "quantization.weights", "quantization.kvCache",
        "gpu.type", "gpu.count", "gpu.hourlyCostUSD",
        "engine.image", "engine.maxNumSeqs", "engine.maxNumBatchedTokens", "engine.prefixCaching",
        "engine.gpuMemoryUtilization", "engine.extraArgs",
        "scaling.minReplicas", "scaling.maxReplicas", "scaling.targetCostPerMillionTokens",
        "scaling.maxQueuePerReplica", "scaling.maxKvCacheUsage", "scaling.scaleToZeroAfter",
    ],
    "CachePolicy": [
        "exact", "semantic.enabled", "semantic.similarityThreshold", "semantic.ttl", "semantic.maxEntries", "store",
    ],
    "InferenceFleet": [
        "tiers", "cachePolicyRef", "routing.mode", "routing.cascade", "routing.complexity",
        "coalescing", "tokens", "budget", "auth",
    ],
}


def spec_node(kind: str, path: str) -> dict | None:
    crd = CRDS[f"tokenfleet.io_{KINDS[kind].plural}.yaml"]
    node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for part in path.split("."):
        node = (node.get("properties") or {}).get(part)
        if node is None:
            return None
    return node


@pytest.mark.parametrize("kind,path", [(k, p) for k, paths in PUBLIC_PATHS.items() for p in paths])
def test_every_public_field_path_is_in_the_crd_with_a_description(kind, path):
    node = spec_node(kind, path)
    assert node is not None, f"{kind} spec.{path} is public API and must stay"
    assert node.get("description")


def test_precisions_are_exactly_the_documented_enums():
    assert spec_node("ModelTier", "quantization.weights")["enum"] == ["none", "fp8", "int8", "awq", "gptq", "int4"]
    assert spec_node("ModelTier", "quantization.kvCache")["enum"] == ["auto", "fp8"]


@pytest.mark.parametrize("kind,path,bound,value", [
    ("ModelTier", "gpu.count", "minimum", 1),
    ("ModelTier", "gpu.hourlyCostUSD", "minimum", 0),
    ("ModelTier", "scaling.targetCostPerMillionTokens", "minimum", 0),
    ("ModelTier", "scaling.minReplicas", "minimum", 0),
    ("ModelTier", "scaling.maxReplicas", "minimum", 0),
    ("CachePolicy", "semantic.similarityThreshold", "minimum", 0),
    ("CachePolicy", "semantic.similarityThreshold", "maximum", 1),
])
def test_ranges_are_in_the_schema(kind, path, bound, value):
    assert spec_node(kind, path)[bound] == value
