"""ModelTier rendering: vLLM flags from the spec, GPU scheduling, probes, labels, owner references."""

import pytest

from tokenfleet.api.v1alpha1 import ModelTierSpec
from tokenfleet.render import Meta, RenderError, build_modeltier
from tokenfleet.vllmserve import initial_replicas, vllm_args

BASE = {"model": {"source": "hf://org/model", "parametersB": 8}, "gpu": {"type": "nvidia-h100"}}


def spec_with(**sections) -> ModelTierSpec:
    raw = {k: dict(v) for k, v in BASE.items()}
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return ModelTierSpec.model_validate(raw)


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


@pytest.mark.parametrize(
    "weights,gpu,expected",
    [
        ("none", "nvidia-h100", None),
        ("fp8", "nvidia-h100", "fp8"),
        ("int8", "nvidia-a100-80gb", "compressed-tensors"),
        ("awq", "nvidia-h100", "awq_marlin"),
        ("awq", "nvidia-t4", "awq"),
        ("gptq", "nvidia-l4", "gptq_marlin"),
        ("gptq", "nvidia-t4", "gptq"),
        ("int4", "nvidia-l4", "bitsandbytes"),
    ],
)
def test_weight_precision_maps_to_the_quantization_flag(weights, gpu, expected):
    args = vllm_args("t", spec_with(quantization={"weights": weights}, gpu={"type": gpu}))
    assert flag(args, "--quantization") == expected
    assert args.count("--quantization") == (0 if expected is None else 1)


@pytest.mark.parametrize("kv,expected", [("auto", None), ("fp8", "fp8")])
def test_kv_cache_dtype_flag_only_when_not_the_default(kv, expected):
    assert flag(vllm_args("t", spec_with(quantization={"kvCache": kv})), "--kv-cache-dtype") == expected


@pytest.mark.parametrize("count", [1, 2, 8])
def test_gpu_count_is_the_tensor_parallel_size_and_the_gpu_limit(count):
    spec = spec_with(gpu={"count": count})
    assert flag(vllm_args("t", spec), "--tensor-parallel-size") == str(count)
    deployment = build_modeltier(Meta("t"), spec)[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(count)


@pytest.mark.parametrize("enabled,present", [(True, False), (False, True)])
def test_prefix_caching_is_left_to_vllm_unless_disabled(enabled, present):
    args = vllm_args("t", spec_with(engine={"prefixCaching": enabled}))
    assert ("--no-enable-prefix-caching" in args) is present
    assert "--enable-prefix-caching" not in args


def test_engine_flags_and_extra_args_follow_the_spec():
    spec = spec_with(
        model={"servedName": "llama", "maxModelLen": 4096},
        engine={"maxNumSeqs": 64, "maxNumBatchedTokens": 4096, "gpuMemoryUtilization": 0.85,
                "extraArgs": ["--enforce-eager"]},
    )
    args = vllm_args("tier-a", spec)
    assert args[0] == "org/model"
    assert flag(args, "--served-model-name") == "llama"
    assert flag(args, "--max-model-len") == "4096"
    assert flag(args, "--max-num-seqs") == "64"
    assert flag(args, "--max-num-batched-tokens") == "4096"
    assert flag(args, "--gpu-memory-utilization") == "0.85"
    assert args[-1] == "--enforce-eager"


def test_unset_engine_limits_are_left_to_vllm():
    args = vllm_args("t", spec_with())
    assert "--max-num-seqs" not in args and "--max-num-batched-tokens" not in args
    assert flag(args, "--served-model-name") == "t"


def test_deployment_runs_vllm_serve_on_the_gpu_node_with_probes_and_scrape_labels():
    deployment, service = build_modeltier(Meta("tier-a", "ml", uid="u-1"), spec_with())
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["vllm", "serve"] and container["image"].startswith("vllm/vllm-openai:v")
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert deployment["metadata"]["name"] == service["metadata"]["name"] == "tier-a-engine"
    assert deployment["metadata"]["namespace"] == "ml"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert set(deployment["spec"]["selector"]["matchLabels"].items()) <= set(
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    owner = deployment["metadata"]["ownerReferences"][0]
    assert owner == {"apiVersion": "tokenfleet.io/v1alpha1", "kind": "ModelTier", "name": "tier-a",
                     "uid": "u-1", "controller": True, "blockOwnerDeletion": True}


def test_offline_render_without_uid_has_no_owner_references():
    deployment, _ = build_modeltier(Meta("t"), spec_with())
    assert "ownerReferences" not in deployment["metadata"]


def test_user_node_selector_replaces_the_default():
    deployment, _ = build_modeltier(Meta("t"), spec_with(gpu={"nodeSelector": {"pool": "gpu-a"}}))
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "gpu-a"}


def test_hf_token_comes_from_the_named_secret():
    spec = spec_with(model={"hfTokenSecretRef": {"name": "hf", "key": "token"}})
    env = build_modeltier(Meta("t"), spec)[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    token = next(e for e in env if e["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "token"}


@pytest.mark.parametrize(
    "scaling,pin,expected",
    [({"minReplicas": 0, "maxReplicas": 4}, None, 1), ({"minReplicas": 3, "maxReplicas": 4}, None, 3),
     ({"minReplicas": 0, "maxReplicas": 0}, None, 0), ({"minReplicas": 1, "maxReplicas": 4}, 2, 2)],
)
def test_initial_replicas(scaling, pin, expected):
    raw = {**BASE, "scaling": scaling}
    if pin is not None:
        raw["replicas"] = pin
    assert initial_replicas(ModelTierSpec.model_validate(raw)) == expected


def test_unknown_gpu_type_needs_its_memory():
    with pytest.raises(RenderError, match="spec.gpu.memoryGiB"):
        build_modeltier(Meta("t"), spec_with(gpu={"type": "acme-x1"}))
    build_modeltier(Meta("t"), spec_with(gpu={"type": "acme-x1", "memoryGiB": 64, "hourlyCostUSD": 2}))


def test_overlong_names_are_refused():
    with pytest.raises(RenderError, match="metadata.name"):
        build_modeltier(Meta("x" * 60), spec_with())


def test_engine_cpu_and_memory_sit_next_to_the_gpus():
    spec = spec_with(engine={"resources": {"requests": {"cpu": "8", "memory": "64Gi"}, "limits": {"memory": "96Gi"}}},
                     gpu={"count": 2})
    resources = build_modeltier(Meta("t"), spec)[0]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"},
                         "limits": {"memory": "96Gi", "nvidia.com/gpu": "2"}}


def test_gpus_cannot_be_set_through_engine_resources():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="spec.gpu.count"):
        spec_with(engine={"resources": {"limits": {"nvidia.com/gpu": "4"}}})


def test_an_operator_upgrade_leaves_the_engine_pod_template_alone(monkeypatch):
    """Only the Deployment carries the operator's version: a pod template that changed with every
    operator release would restart (and cold-start) every engine on every upgrade."""
    import tokenfleet.render as render

    before, _ = build_modeltier(Meta("tier-a", "ml", uid="u-1"), spec_with())
    monkeypatch.setattr(render, "__version__", "99.0.0")
    after, _ = build_modeltier(Meta("tier-a", "ml", uid="u-1"), spec_with())
    assert after["metadata"]["labels"]["app.kubernetes.io/version"] == "99.0.0"
    assert after["spec"]["template"] == before["spec"]["template"]
    assert "app.kubernetes.io/version" not in after["spec"]["template"]["metadata"]["labels"]
