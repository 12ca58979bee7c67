"""CachePolicy and InferenceFleet rendering, and the router config the operator resolves for a fleet."""

import json

import pytest

from tokenfleet.api.routerconfig import CONFIG_KEY, RouterConfig
from tokenfleet.api.v1alpha1 import CachePolicySpec, InferenceFleetSpec, ModelTierSpec
from tokenfleet.render import Meta, RenderError, build_cachepolicy, build_fleet, build_router_config

SMALL = ModelTierSpec.model_validate(
    {"model": {"source": "org/small", "parametersB": 1}, "gpu": {"type": "nvidia-l4"},
     "scaling": {"minReplicas": 0, "maxReplicas": 2}}
)
BIG = ModelTierSpec.model_validate(
    {"model": {"source": "org/big", "parametersB": 70, "servedName": "big-model"}, "gpu": {"type": "nvidia-h100", "count": 2},
     "quantization": {"weights": "awq"}}
)
TIERS = {"small": SMALL, "big": BIG}


def fleet(**extra) -> InferenceFleetSpec:
    return InferenceFleetSpec.model_validate({"tiers": ["small", "big"], **extra})


def test_router_config_lists_tiers_cheapest_first_with_service_urls_and_prices():
    config = build_router_config(Meta("chat", "ml"), fleet(), TIERS, "shared")
    assert [t.name for t in config.tiers] == ["small", "big"]
    small, big = config.tiers
    assert small.url == "http://small-engine.ml.svc:8000/v1" and big.served_model == "big-model"
    assert 0 < small.output_cost_per_million < big.output_cost_per_million
    assert small.scales_to_zero is True and big.scales_to_zero is False
    assert config.cache.url == "http://shared-cache.ml.svc:8080"


def test_router_config_carries_policy_caps_and_auth():
    spec = fleet(
        routing={"mode": "complexity", "cascade": {"threshold": -1.2}},
        tokens={"defaultMaxTokens": 256, "maxOutputTokens": {"small": 128}},
        auth={"apiKeysSecretRef": {"name": "keys", "key": "keys"}},
    )
    config = build_router_config(Meta("chat"), spec, TIERS, None)
    assert config.routing.mode == "complexity" and config.routing.cascade.threshold == -1.2
    assert config.default_max_tokens == 256
    assert [t.max_output_tokens for t in config.tiers] == [128, None]
    assert config.api_keys_file == "/etc/tokenfleet/auth/keys" and config.cache.url is None


def test_missing_tier_is_an_error_naming_it():
    with pytest.raises(RenderError, match="spec.tiers: ModelTier not found: big"):
        build_router_config(Meta("chat"), fleet(), {"small": SMALL}, None)


def test_output_cap_for_a_tier_outside_the_fleet_is_an_error():
    with pytest.raises(RenderError, match="spec.tokens.maxOutputTokens: not a tier of this fleet: huge"):
        build_router_config(Meta("chat"), fleet(tokens={"maxOutputTokens": {"huge": 5}}), TIERS, None)


def test_fleet_renders_configmap_deployment_service_sharing_one_config():
    configmap, deployment, service = build_fleet(Meta("chat", "ml", uid="u"), fleet(), TIERS)
    assert (configmap["kind"], deployment["kind"], service["kind"]) == ("ConfigMap", "Deployment", "Service")
    config = RouterConfig.model_validate(json.loads(configmap["data"][CONFIG_KEY]))
    assert config.fleet == "chat"
    pod = deployment["spec"]["template"]
    args = pod["spec"]["containers"][0]["args"]
    assert args[:3] == ["router", "--config", f"/etc/tokenfleet/router/{CONFIG_KEY}"]
    assert pod["spec"]["volumes"][0]["configMap"]["name"] == configmap["metadata"]["name"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_config_change_changes_the_pod_template_hash_so_routers_roll():
    _, before, _ = build_fleet(Meta("chat"), fleet(), TIERS)
    _, after, _ = build_fleet(Meta("chat"), fleet(coalescing={"windowMs": 30}), TIERS)
    key = "tokenfleet.io/config-hash"
    assert before["spec"]["template"]["metadata"]["annotations"][key] != after["spec"]["template"]["metadata"]["annotations"][key]


def test_api_keys_secret_is_mounted_only_when_configured():
    _, open_router, _ = build_fleet(Meta("chat"), fleet(), TIERS)
    _, keyed, _ = build_fleet(Meta("chat"), fleet(auth={"apiKeysSecretRef": {"name": "k", "key": "lines"}}), TIERS)
    assert "api-keys" not in [v["name"] for v in open_router["spec"]["template"]["spec"]["volumes"]]
    secret = next(v for v in keyed["spec"]["template"]["spec"]["volumes"] if v["name"] == "api-keys")
    assert secret["secret"] == {"secretName": "k", "items": [{"key": "lines", "path": "keys"}]}


def test_cache_policy_renders_its_spec_and_redis_url_into_the_pod():
    spec = CachePolicySpec.model_validate(
        {"semantic": {"similarityThreshold": 0.9, "maxEntries": 1000}, "store": {"type": "redis", "redisSecretRef": {"name": "r", "key": "url"}}}
    )
    deployment, service = build_cachepolicy(Meta("shared", "ml"), spec)
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert CachePolicySpec.model_validate(json.loads(env["TOKENFLEET_CACHE_POLICY"]["value"])) == spec
    assert env["TOKENFLEET_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "r", "key": "url"}
    assert service["metadata"]["name"] == "shared-cache"


def test_memory_store_has_no_redis_env():
    deployment, _ = build_cachepolicy(Meta("c"), CachePolicySpec())
    names = [e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert names == ["TOKENFLEET_CACHE_POLICY"]


def test_operator_setting_replaces_the_derived_cache_resources():
    from tokenfleet.render import Settings

    derived, _ = build_cachepolicy(Meta("c"), CachePolicySpec.model_validate({"semantic": {"maxEntries": 1_000_000}}))
    assert derived["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"memory": "4418Mi"}
    fixed = {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}
    custom, _ = build_cachepolicy(Meta("c"), CachePolicySpec(), Settings(cache_resources=fixed))
    assert custom["spec"]["template"]["spec"]["containers"][0]["resources"] == fixed
