"""The v1alpha1 models: defaults, ranges, enums and cross-field rules (the pydantic side of validation)."""

import pytest
from pydantic import ValidationError

from tokenfleet.api.common import parse_duration
from tokenfleet.api.routerconfig import RouterConfig
from tokenfleet.api.v1alpha1 import (
    CachePolicySpec,
    InferenceFleetSpec,
    ModelTierSpec,
    parse_spec,
)

TIER = {"model": {"source": "hf://meta-llama/Llama-3.1-8B-Instruct", "parametersB": 8}}


def tier(**overrides):
    spec = {**TIER}
    for path, value in overrides.items():
        node = spec
        *parents, leaf = path.split(".")
        for p in parents:
            node[p] = dict(node.get(p, {}))
            node = node[p]
        node[leaf] = value
    return spec


def test_minimal_modeltier_gets_sensible_defaults():
    spec = ModelTierSpec.model_validate(TIER)
    assert spec.quantization.weights == "none" and spec.quantization.kv_cache == "auto"
    assert spec.gpu.count == 1 and spec.engine.prefix_caching is True
    assert spec.scaling.min_replicas <= spec.scaling.max_replicas
    assert spec.model.hf_id == "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize(
    "path,value,fragment",
    [
        ("quantization.weights", "fp4", "quantization.weights"),
        ("quantization.kvCache", "int8", "quantization.kvCache"),
        ("gpu.count", 0, "gpu.count"),
        ("gpu.hourlyCostUSD", -1.0, "gpu.hourlyCostUSD"),
        ("scaling.minReplicas", -1, "scaling.minReplicas"),
        ("scaling.maxKvCacheUsage", 1.5, "scaling.maxKvCacheUsage"),
        ("scaling.scaleToZeroAfter", "soon", "scaling.scaleToZeroAfter"),
        ("engine.gpuMemoryUtilization", 0, "engine.gpuMemoryUtilization"),
        ("model.parametersB", 0, "model.parametersB"),
        ("engine.typoField", 1, "engine.typoField"),
        ("engine.resources", {"requests": {"cpu": "lots"}}, "engine.resources.requests.cpu"),
        ("model.hfTokenSecretRef", {"name": "My_Secret", "key": "token"}, "model.hfTokenSecretRef.name"),
        ("model.hfTokenSecretRef", {"name": "hf", "key": "to/ken"}, "model.hfTokenSecretRef.key"),
        ("gpu.nodeSelector", {"pool": "a100 pool"}, "gpu.nodeSelector.pool"),
        ("gpu.nodeSelector", {"Example.com/pool": "a100"}, "gpu.nodeSelector"),
        ("gpu.nodeSelector", {"pool/": "a100"}, "gpu.nodeSelector"),
    ],
)
def test_bad_modeltier_values_are_refused_naming_the_field(path, value, fragment):
    with pytest.raises(ValidationError) as err:
        ModelTierSpec.model_validate(tier(**{path: value}))
    locs = [".".join(str(p) for p in e["loc"]) for e in err.value.errors()]
    assert fragment in locs


def test_well_formed_secret_names_and_node_labels_are_accepted():
    spec = ModelTierSpec.model_validate(tier(**{
        "model.hfTokenSecretRef": {"name": "hf-token.v2", "key": "HF_TOKEN"},
        "gpu.nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4", "pool": "", "tier_2": "A.b-c"},
    }))
    assert spec.gpu.node_selector["cloud.google.com/gke-accelerator"] == "nvidia-l4"


def test_min_replicas_above_max_replicas_is_refused():
    with pytest.raises(ValidationError, match="minReplicas \\(5\\) must not exceed maxReplicas \\(2\\)"):
        ModelTierSpec.model_validate(tier(**{"scaling.minReplicas": 5, "scaling.maxReplicas": 2}))


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_similarity_threshold_outside_unit_interval_is_refused(threshold):
    with pytest.raises(ValidationError):
        CachePolicySpec.model_validate({"semantic": {"similarityThreshold": threshold}})


def test_redis_store_needs_a_secret_reference():
    with pytest.raises(ValidationError, match="redisSecretRef"):
        CachePolicySpec.model_validate({"store": {"type": "redis"}})
    ok = CachePolicySpec.model_validate({"store": {"type": "redis", "redisSecretRef": {"name": "r", "key": "url"}}})
    assert ok.store.redis_secret_ref.name == "r"


@pytest.mark.parametrize(
    "spec,ok",
    [
        ({"tiers": ["a", "b"]}, True),
        ({"tiers": []}, False),
        ({"tiers": ["a", "a"]}, False),
        ({"tiers": ["a"], "routing": {"mode": "random"}}, False),
        ({"tiers": ["a"], "routing": {"cascade": {"threshold": 0.5}}}, False),
        ({"tiers": ["a"], "coalescing": {"windowMs": 5000}}, False),
        ({"tiers": ["a"], "budget": {"monthlyUSD": -5}}, False),
        ({"tiers": ["a"], "budget": {"monthlyUSD": 100, "onExceeded": "reject"}}, True),
    ],
)
def test_inferencefleet_validation_table(spec, ok):
    if ok:
        InferenceFleetSpec.model_validate(spec)
    else:
        with pytest.raises(ValidationError):
            InferenceFleetSpec.model_validate(spec)


def test_wire_form_uses_the_public_field_names():
    wire = parse_spec("ModelTier", tier(**{"gpu.hourlyCostUSD": 0.8, "gpu.memoryGiB": 24})).to_wire()
    assert wire["gpu"]["hourlyCostUSD"] == 0.8 and wire["gpu"]["memoryGiB"] == 24
    assert set(wire["scaling"]) >= {
        "minReplicas", "maxReplicas", "maxQueuePerReplica", "maxKvCacheUsage", "scaleToZeroAfter",
    }
    assert set(wire["engine"]) >= {"image", "prefixCaching", "gpuMemoryUtilization", "extraArgs"}


@pytest.mark.parametrize(
    "text,seconds",
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("500ms", 0.5), ("1d", 86400), ("1.5h", 5400)],
)
def test_durations_parse_to_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "15", "m", "1 h", "-5m", "5y"])
def test_malformed_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_router_config_refuses_duplicate_tier_names():
    tiers = [{"name": "a", "url": "http://x/v1", "servedModel": "a"}] * 2
    with pytest.raises(ValidationError, match="unique"):
        RouterConfig.model_validate({"tiers": tiers})
