"""Pure rendering: a custom resource in, the Kubernetes objects that run it out (through jinja2).

Nothing here talks to a server: the operator's handlers and ``tokenfleet render`` call the
same ``build_*`` functions, so what ``render`` prints is what the operator applies.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache

import jinja2
import yaml
from pydantic import ValidationError

from tokenfleet import API_VERSION, __version__
from tokenfleet.api.routerconfig import CONFIG_KEY, CacheClientConfig, RouterConfig, TierEndpoint
from tokenfleet.api.v1alpha1 import CachePolicySpec, InferenceFleetSpec, ModelTierSpec, parse_spec
from tokenfleet.gpus import GPU_TYPES, estimate_memory_fit
from tokenfleet.perf import profile_for_tier, token_prices
from tokenfleet.vllmserve import engine_resources, gpu_node_selector, initial_replicas, vllm_args

ENGINE_PORT_NAME = "http"
CACHE_PORT = 8080
ROUTER_PORT = 8080
MAX_NAME_LENGTH = 56  # child names add up to 7 characters and must stay DNS-1035 labels (63)


class RenderError(ValueError):
    """A spec that cannot be rendered; the message names the resource and the field."""


@dataclass(frozen=True)
class Settings:
    """Operator-wide rendering settings (from the operator's environment, or defaults)."""

    image: str = f"ghcr.io/tokenfleet/tokenfleet:{__version__}"
    image_pull_policy: str = "IfNotPresent"
    router_resources: dict = field(
        default_factory=lambda: {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    )
    cache_cpu: str = "1"
    cache_resources: dict | None = None  # replaces the requests/limits derived from maxEntries


@dataclass(frozen=True)
class Meta:
    """The identity of the custom resource being rendered."""

    name: str
    namespace: str = "default"
    uid: str | None = None  # unknown offline; owner references need it

    @classmethod
    def from_object(cls, obj: dict) -> "Meta":
        md = obj.get("metadata") or {}
        return cls(name=md.get("name", ""), namespace=md.get("namespace") or "default", uid=md.get("uid"))


def child_name(kind: str, name: str) -> str:
    """Name of the workload a custom resource runs: <name>-engine, <name>-cache, <name>-router."""
    suffix = {"ModelTier": "engine", "CachePolicy": "cache", "InferenceFleet": "router"}[kind]
    return f"{name}-{suffix}"


def service_url(kind: str, name: str, namespace: str, port: int) -> str:
    """In-cluster base URL of the Service for a custom resource's workload."""
    return f"http://{child_name(kind, name)}.{namespace}.svc:{port}"


def format_validation_error(kind: str, name: str, err: ValidationError) -> str:
    """One line per problem, each naming the field path as the user wrote it (spec.a.b)."""
    lines = []
    for problem in err.errors():
        path = ".".join(str(p) for p in ("spec", *problem["loc"]))
        lines.append(f"{kind} {name}: {path}: {problem['msg']}")
    return "\n".join(lines)


def validate_spec(kind: str, name: str, spec: dict | None):
    """Parse a spec, raising RenderError with the field path on bad input."""
    try:
        return parse_spec(kind, spec)
    except ValidationError as err:
        raise RenderError(format_validation_error(kind, name, err)) from None


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tokenfleet", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["json"] = lambda v: json.dumps(v, sort_keys=False)
    env.filters["pod_labels"] = pod_labels
    return env


def _template(template: str, **context) -> dict:
    return yaml.safe_load(_env().get_template(template).render(**context))


def labels(kind: str, meta: Meta, app: str, component: str) -> dict[str, str]:
    """Recommended app.kubernetes.io labels plus the owning resource."""
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/instance": meta.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "tokenfleet",
        "app.kubernetes.io/managed-by": "tokenfleet-operator",
        "app.kubernetes.io/version": __version__,
        f"tokenfleet.io/{kind.lower()}": meta.name,
    }


def pod_labels(all_labels: dict[str, str]) -> dict[str, str]:
    """A pod template's labels: all but the version, so that upgrading the operator does not restart pods
    whose spec is otherwise the same (an engine restart means a cold start on a GPU). Pods whose image
    is the operator's own (router, cache) still roll on an upgrade: their image changes."""
    return {k: v for k, v in all_labels.items() if k != "app.kubernetes.io/version"}


def selector(meta: Meta, app: str, component: str) -> dict[str, str]:
    """The stable subset of the labels that selects pods (never the version)."""
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/instance": meta.name,
        "app.kubernetes.io/component": component,
    }


def owner_references(kind: str, meta: Meta) -> list[dict]:
    """The controller owner reference; empty offline, where the uid is unknown."""
    if not meta.uid:
        return []
    return [
        {
            "apiVersion": API_VERSION,
            "kind": kind,
            "name": meta.name,
            "uid": meta.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def _check_name(kind: str, meta: Meta) -> None:
    if len(meta.name) > MAX_NAME_LENGTH:
        raise RenderError(f"{kind} {meta.name}: metadata.name: at most {MAX_NAME_LENGTH} characters")


# --------------------------------------------------------------------------- ModelTier


def gpu_memory_fit(name: str, spec: ModelTierSpec):
    """The memory estimate for one replica of the tier ``name`` (see tokenfleet.gpus)."""
    gpu = GPU_TYPES.get(spec.gpu.type)
    memory = spec.gpu.memory_gib or (gpu.memory_gib if gpu else None)
    if memory is None:
        raise RenderError(
            f"ModelTier {name}: spec.gpu.memoryGiB: GPU type {spec.gpu.type!r} is not in the catalogue "
            f"({', '.join(GPU_TYPES)}); set spec.gpu.memoryGiB and spec.gpu.hourlyCostUSD"
        )
    return estimate_memory_fit(
        parameters_b=spec.model.parameters_b,
        weights=spec.quantization.weights,
        kv_cache=spec.quantization.kv_cache,
        max_model_len=spec.model.max_model_len,
        gpu_memory_gib=memory,
        gpu_count=spec.gpu.count,
        gpu_memory_utilization=spec.engine.gpu_memory_utilization,
    )


def build_modeltier(meta: Meta, spec: ModelTierSpec, settings: Settings = Settings()) -> list[dict]:
    """Deployment (vllm serve) and Service for a ModelTier."""
    _check_name("ModelTier", meta)
    gpu_memory_fit(meta.name, spec)  # unknown GPU types without memoryGiB are an error here
    ctx = {
        "name": child_name("ModelTier", meta.name),
        "namespace": meta.namespace,
        "labels": labels("ModelTier", meta, "vllm", "engine"),
        "selector": selector(meta, "vllm", "engine"),
        "owners": owner_references("ModelTier", meta),
        "spec": spec,
        "args": vllm_args(meta.name, spec),
        "replicas": initial_replicas(spec),
        "node_selector": gpu_node_selector(spec),
        "port": spec.engine.port,
        "port_name": ENGINE_PORT_NAME,
        "hf_token": spec.model.hf_token_secret_ref,
        "resources": engine_resources(spec),
    }
    return [_template("engine-deployment.yaml.j2", **ctx), _template("engine-service.yaml.j2", **ctx)]


# --------------------------------------------------------------------------- CachePolicy


def cache_memory_limit_mib(spec: CachePolicySpec) -> int:
    """Memory for the cache service: 512 MiB of runtime and model, plus ~4 KiB per entry."""
    return 512 + (spec.semantic.max_entries * 4096) // (1024 * 1024)


def cache_resources(spec: CachePolicySpec, settings: Settings) -> dict:
    """The cache container's resources: the operator's setting, else derived from maxEntries."""
    if settings.cache_resources:
        return settings.cache_resources
    memory = f"{cache_memory_limit_mib(spec)}Mi"
    return {"requests": {"cpu": settings.cache_cpu, "memory": memory}, "limits": {"memory": memory}}


def build_cachepolicy(meta: Meta, spec: CachePolicySpec, settings: Settings = Settings()) -> list[dict]:
    """Deployment and Service of the cache service for a CachePolicy."""
    _check_name("CachePolicy", meta)
    ctx = {
        "name": child_name("CachePolicy", meta.name),
        "namespace": meta.namespace,
        "labels": labels("CachePolicy", meta, "tokenfleet-cache", "cache"),
        "selector": selector(meta, "tokenfleet-cache", "cache"),
        "owners": owner_references("CachePolicy", meta),
        "spec": spec,
        "policy_json": json.dumps(spec.to_wire(), sort_keys=True),
        "settings": settings,
        "port": CACHE_PORT,
        "resources": cache_resources(spec, settings),
    }
    return [_template("cache-deployment.yaml.j2", **ctx), _template("cache-service.yaml.j2", **ctx)]


# --------------------------------------------------------------------------- InferenceFleet


def tier_endpoint(name: str, namespace: str, spec: ModelTierSpec, fleet: InferenceFleetSpec) -> TierEndpoint:
    """How the router reaches one tier, with its prices from the engine performance model."""
    in_price, out_price = token_prices(profile_for_tier(spec))
    cap = fleet.tokens.max_output_tokens.get(name)
    return TierEndpoint(
        name=name,
        url=service_url("ModelTier", name, namespace, spec.engine.port) + "/v1",
        served_model=spec.model.served_name or name,
        input_cost_per_million=round(in_price, 6),
        output_cost_per_million=round(out_price, 6),
        max_output_tokens=cap,
        max_concurrency=spec.scaling.max_replicas * (spec.engine.max_num_seqs or 256) or 256,
        scales_to_zero=spec.scaling.min_replicas == 0 and spec.replicas is None,
    )


def build_router_config(
    meta: Meta,
    spec: InferenceFleetSpec,
    tiers: dict[str, ModelTierSpec],
    cache_policy: str | None = None,
) -> RouterConfig:
    """Resolve a fleet into the router's config; every tier in spec.tiers must be in ``tiers``."""
    missing = [t for t in spec.tiers if t not in tiers]
    if missing:
        raise RenderError(f"InferenceFleet {meta.name}: spec.tiers: ModelTier not found: {', '.join(missing)}")
    unknown_caps = sorted(set(spec.tokens.max_output_tokens) - set(spec.tiers))
    if unknown_caps:
        raise RenderError(
            f"InferenceFleet {meta.name}: spec.tokens.maxOutputTokens: not a tier of this fleet: "
            f"{', '.join(unknown_caps)}"
        )
    cache_url = service_url("CachePolicy", cache_policy, meta.namespace, CACHE_PORT) if cache_policy else None
    return RouterConfig(
        fleet=meta.name,
        tiers=[tier_endpoint(t, meta.namespace, tiers[t], spec) for t in spec.tiers],
        routing=spec.routing,
        coalescing=spec.coalescing,
        default_max_tokens=spec.tokens.default_max_tokens,
        budget=spec.budget,
        cache=CacheClientConfig(url=cache_url),
        api_keys_file="/etc/tokenfleet/auth/keys" if spec.auth.api_keys_secret_ref else None,
    )


def build_fleet(
    meta: Meta,
    spec: InferenceFleetSpec,
    tiers: dict[str, ModelTierSpec],
    settings: Settings = Settings(),
) -> list[dict]:
    """ConfigMap (resolved router config), Deployment and Service of the router for a fleet."""
    _check_name("InferenceFleet", meta)
    if spec.cache_policy_ref and len(spec.cache_policy_ref) > MAX_NAME_LENGTH:
        raise RenderError(f"InferenceFleet {meta.name}: spec.cachePolicyRef: at most {MAX_NAME_LENGTH} characters")
    config = build_router_config(meta, spec, tiers, spec.cache_policy_ref)
    config_json = config.to_json()
    ctx = {
        "name": child_name("InferenceFleet", meta.name),
        "namespace": meta.namespace,
        "labels": labels("InferenceFleet", meta, "tokenfleet-router", "router"),
        "selector": selector(meta, "tokenfleet-router", "router"),
        "owners": owner_references("InferenceFleet", meta),
        "spec": spec,
        "settings": settings,
        "port": ROUTER_PORT,
        "config_key": CONFIG_KEY,
        "config_json": config_json,
        "config_hash": hashlib.sha256(config_json.encode()).hexdigest()[:16],
        "auth": spec.auth.api_keys_secret_ref,
    }
    return [
        _template("router-configmap.yaml.j2", **ctx),
        _template("router-deployment.yaml.j2", **ctx),
        _template("router-service.yaml.j2", **ctx),
    ]


# --------------------------------------------------------------------------- documents


def _fitting(meta: Meta, spec: ModelTierSpec, settings: Settings) -> list[dict]:
    """A tier's children, or a RenderError where the operator would create none (the model does not fit)."""
    fit = gpu_memory_fit(meta.name, spec)
    if not fit.fits:
        raise RenderError(f"ModelTier {meta.name}: spec.gpu: {fit.message(spec.gpu.type, spec.gpu.count)} "
                          "(the operator creates no Deployment and reports InsufficientGPUMemory)")
    return build_modeltier(meta, spec, settings)


def _parse_documents(docs: list[dict]) -> tuple[dict[str, dict], list[str]]:
    """kind -> {(namespace, name): (meta, spec)} of the tokenfleet resources in ``docs``, and the problems."""
    parsed: dict[str, dict] = {"ModelTier": {}, "CachePolicy": {}, "InferenceFleet": {}}
    errors: list[str] = []
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("apiVersion") != API_VERSION:
            continue
        kind, meta = doc.get("kind"), Meta.from_object(doc)
        if kind not in parsed:
            errors.append(f"{kind} {meta.name}: kind: not a tokenfleet.io kind")
            continue
        try:
            parsed[kind][(meta.namespace, meta.name)] = (meta, validate_spec(kind, meta.name, doc.get("spec")))
        except RenderError as err:
            errors.append(str(err))
    return parsed, errors


def render_documents(docs: list[dict], settings: Settings = Settings()) -> list[dict]:
    """Render every tokenfleet resource in ``docs`` (fleets resolve tiers from the same documents).

    What it returns is what the operator applies; every resource the operator would refuse (a bad
    spec, a model too large for its GPUs, a fleet naming what is not there) is one line of the
    RenderError.
    """
    parsed, errors = _parse_documents(docs)
    if errors:
        raise RenderError("\n".join(errors))
    out: list[dict] = []

    def build(fn, *args) -> None:
        try:
            out.extend(fn(*args))
        except RenderError as err:
            errors.append(str(err))

    for meta, spec in parsed["ModelTier"].values():
        build(_fitting, meta, spec, settings)
    for meta, spec in parsed["CachePolicy"].values():
        build(build_cachepolicy, meta, spec, settings)
    for meta, spec in parsed["InferenceFleet"].values():
        tiers = {n: s for (ns, n), (_, s) in parsed["ModelTier"].items() if ns == meta.namespace}
        if spec.cache_policy_ref and (meta.namespace, spec.cache_policy_ref) not in parsed["CachePolicy"]:
            errors.append(
                f"InferenceFleet {meta.name}: spec.cachePolicyRef: CachePolicy {spec.cache_policy_ref!r} not found"
            )
        build(build_fleet, meta, spec, tiers, settings)
    if errors:
        raise RenderError("\n".join(errors))
    return out
