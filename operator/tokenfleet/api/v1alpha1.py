"""tokenfleet.io/v1alpha1: ModelTier, CachePolicy and InferenceFleet as pydantic models.

These models are the single source of truth for the API: the CRDs in crds/ are generated
from them (``tokenfleet crds``), the operator and ``tokenfleet render`` parse specs with them.
Field descriptions become ``kubectl explain`` text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tokenfleet.api.common import (ApiModel, Condition, Duration, LabelValue, Quantity, SecretKeyRef, label_key_problem,
                                   parse_duration)

DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.30.0"

WeightPrecision = Literal["none", "fp8", "int8", "awq", "gptq", "int4"]
KvCacheDtype = Literal["auto", "fp8"]
ConditionList = list[Condition]


def _cel(rule: str, message: str) -> dict:
    return {"rule": rule, "message": message}


class ObjectStatus(ApiModel):
    """Fields every kind's status carries."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the operator last reconciled."
    )
    conditions: ConditionList = Field(
        default_factory=list,
        description="Ready, Progressing and Degraded (standard metav1.Condition fields).",
    )


# --------------------------------------------------------------------------- ModelTier


class ModelSpec(ApiModel):
    """Which model this tier serves."""

    source: str = Field(
        min_length=1,
        description="Where the weights come from: a Hugging Face repo id (org/name), optionally "
        "prefixed with hf://, or a local path inside the container.",
    )
    served_name: str | None = Field(
        default=None,
        description="Model name the engine answers to (vLLM --served-model-name). Defaults to the "
        "ModelTier's name.",
    )
    parameters_b: float = Field(
        gt=0, description="Parameter count in billions; used to size GPU memory and estimate throughput."
    )
    max_model_len: int = Field(
        default=8192, ge=128, le=1048576, description="Longest context in tokens (vLLM --max-model-len)."
    )
    hf_token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a Hugging Face token, for gated models (HF_TOKEN)."
    )

    @property
    def hf_id(self) -> str:
        """The model id vLLM expects: the source without its hf:// prefix."""
        return self.source.removeprefix("hf://")


class QuantizationSpec(ApiModel):
    """Precision of the weights and of the KV cache."""

    weights: WeightPrecision = Field(
        default="none",
        description="Weight precision: none (16-bit), fp8, int8 (W8A8 checkpoints), awq, gptq "
        "(4-bit checkpoints), int4 (in-flight 4-bit through bitsandbytes).",
    )
    kv_cache: KvCacheDtype = Field(
        default="auto", description="KV-cache dtype: auto (the model's) or fp8 (half the memory per token)."
    )


class GpuSpec(ApiModel):
    """The GPU shape of one replica."""

    type: str = Field(
        default="nvidia-l4",
        min_length=1,
        description="GPU type: nvidia-h100, nvidia-a100-80gb, nvidia-a100-40gb, nvidia-l40s, nvidia-l4, "
        "nvidia-a10g, nvidia-t4, or any other name together with memoryGiB and hourlyCostUSD.",
    )
    count: int = Field(default=1, ge=1, le=16, description="GPUs per replica (vLLM --tensor-parallel-size).")
    hourly_cost_usd: float | None = Field(
        default=None,
        alias="hourlyCostUSD",
        ge=0,
        description="Price of one GPU-hour in USD. Defaults to the on-demand price of the GPU type.",
    )
    memory_gib: float | None = Field(
        default=None, alias="memoryGiB", gt=0, description="Memory of one GPU in GiB. Defaults to the GPU type's memory."
    )
    node_selector: dict[str, LabelValue] | None = Field(
        default=None,
        description="Node labels that select this GPU. Defaults to nvidia.com/gpu.product from GPU "
        "feature discovery for known types.",
    )

    @field_validator("node_selector")
    @classmethod
    def _label_keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in value or {}:
            if problem := label_key_problem(key):
                raise ValueError(problem)
        return value


class ResourcesSpec(ApiModel):
    """CPU and memory for a container (the GPUs come from spec.gpu)."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Resource requests, e.g. {cpu: \"8\", memory: 64Gi}."
    )
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Resource limits, e.g. {memory: 96Gi}.")

    @model_validator(mode="after")
    def _no_gpus_here(self) -> "ResourcesSpec":
        for section in (self.requests, self.limits):
            if "nvidia.com/gpu" in section:
                raise ValueError("set GPUs with spec.gpu.count, not in engine.resources")
        return self


class EngineSpec(ApiModel):
    """How the vLLM engine runs."""

    image: str = Field(default=DEFAULT_VLLM_IMAGE, min_length=1, description="vLLM OpenAI server image, pinned.")
    max_num_seqs: int | None = Field(
        default=None, ge=1, description="Most sequences in one batch (vLLM --max-num-seqs). Default: vLLM's."
    )
    max_num_batched_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Most tokens in one scheduler step (vLLM --max-num-batched-tokens). Default: vLLM's.",
    )
    prefix_caching: bool = Field(
        default=True,
        description="Automatic prefix caching; on by default in vLLM, false adds --no-enable-prefix-caching.",
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, le=1, description="Share of GPU memory vLLM may use (--gpu-memory-utilization)."
    )
    extra_args: list[str] = Field(
        default_factory=list, description="Further vLLM arguments, appended after the generated ones."
    )
    port: int = Field(default=8000, ge=1, le=65535, description="Port the engine serves HTTP and /metrics on.")
    resources: ResourcesSpec | None = Field(
        default=None,
        description="CPU and memory requests/limits of the vLLM container, next to its GPUs. Unset: none "
        "(the GPU request alone places the pod).",
    )


class ScalingSpec(ApiModel):
    """How many replicas, and what the autoscaler aims for."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                _cel("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas")
            ]
        }
    }

    min_replicas: int = Field(
        default=1, ge=0, description="Fewest replicas; 0 allows scale to zero after scaleToZeroAfter."
    )
    max_replicas: int = Field(default=8, ge=0, description="Most replicas the autoscaler may run.")
    target_cost_per_million_tokens: float | None = Field(
        default=None,
        ge=0,
        description="Target cost per 1M tokens (USD). Above it the autoscaler removes replicas as long as "
        "the remaining ones stay within the latency guardrails. Unset: guardrails only.",
    )
    max_utilization: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description="Guardrail: share of a replica's saturation throughput in use (the engine performance model at "
        "the observed prompt and output lengths) before scaling up; it keeps batches full but not saturated.",
    )
    max_queue_per_replica: float = Field(
        default=4, ge=0, description="Guardrail: waiting requests per replica before scaling up."
    )
    max_kv_cache_usage: float = Field(
        default=0.85, ge=0, le=1, description="Guardrail: KV-cache use (0-1) per replica before scaling up."
    )
    ttft_slo_seconds: float = Field(
        default=2.0,
        gt=0,
        alias="ttftSLOSeconds",
        description="Guardrail: time to first token (p95, seconds) above which the autoscaler scales up.",
    )
    scale_to_zero_after: Duration = Field(
        default="15m", description="Idle time after which a tier with minReplicas 0 goes to zero replicas."
    )
    scale_down_stabilization: Duration = Field(
        default="5m",
        description="Scale down only to the highest replica count recommended within this window.",
    )
    max_step: int = Field(default=4, ge=1, description="Most replicas added or removed in one decision.")
    scale_up_cooldown: Duration = Field(
        default="0s", description="Least time between two scale-ups (a starting replica already counts as capacity)."
    )
    scale_down_cooldown: Duration = Field(
        default="2m",
        description="Least time after a scale-down before the next one, so the metrics reflect the new size.",
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> "ScalingSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})"
            )
        parse_duration(self.scale_to_zero_after)
        return self


class ModelTierSpec(ApiModel):
    """One model at one size and precision on one GPU shape."""

    model: ModelSpec = Field(description="The model this tier serves.")
    quantization: QuantizationSpec = Field(
        default_factory=QuantizationSpec, description="Weight and KV-cache precision."
    )
    gpu: GpuSpec = Field(default_factory=GpuSpec, description="GPU type, count and price per replica.")
    engine: EngineSpec = Field(default_factory=EngineSpec, description="vLLM engine settings.")
    scaling: ScalingSpec = Field(default_factory=ScalingSpec, description="Replica bounds and autoscaling targets.")
    replicas: int | None = Field(
        default=None,
        ge=0,
        description="Pin the replica count; the autoscaler then leaves the tier alone. Unset: autoscaled.",
    )


class LastScale(ApiModel):
    """The autoscaler's most recent change."""

    time: str = Field(description="When the change was made (RFC 3339).")
    from_: int = Field(alias="from", description="Replicas before.")
    to: int = Field(description="Replicas after.")
    reason: str = Field(description="Why: QueueHigh, KvCacheHigh, TtftHigh, CostAboveTarget, Idle, ...")


class ModelTierStatus(ObjectStatus):
    """What the operator observed of a ModelTier."""

    replicas: int | None = Field(default=None, description="Replicas the Deployment runs.")
    ready_replicas: int | None = Field(default=None, description="Replicas that pass their readiness probe.")
    desired_replicas: int | None = Field(default=None, description="Replicas the autoscaler last asked for.")
    cost_per_million_tokens: float | None = Field(
        default=None, description="Measured cost per 1M tokens (USD) over the last window."
    )
    tokens_per_second: float | None = Field(default=None, description="Prompt plus generated tokens per second.")
    queue_depth: float | None = Field(default=None, description="Requests waiting across replicas.")
    kv_cache_usage: float | None = Field(default=None, description="Mean KV-cache use (0-1).")
    gpu_memory: str | None = Field(default=None, description="The GPU memory estimate, in words.")
    last_scale: LastScale | None = Field(default=None, description="The most recent replica change.")


# --------------------------------------------------------------------------- CachePolicy


class ExactCacheSpec(ApiModel):
    """Exact-match response cache."""

    enabled: bool = Field(default=True, description="Answer byte-identical requests from the cache.")
    ttl: Duration = Field(default="1h", description="How long an exact entry lives.")


class SemanticCacheSpec(ApiModel):
    """Semantic response cache: rephrasings of a cached question get its answer."""

    enabled: bool = Field(default=True, description="Look up rephrasings by embedding similarity.")
    similarity_threshold: float = Field(
        default=0.79,
        ge=0,
        le=1,
        description="Least cosine similarity for a candidate hit (0-1). 0.79 with the guard on is calibrated "
        "on SemEval STS forum pairs: ~56% of rephrasings hit at ~0.5% false hits (docs/cache.md).",
    )
    ttl: Duration = Field(default="24h", description="How long a semantic entry lives.")
    max_entries: int = Field(
        default=1_000_000, ge=1, description="Most entries per cache; the oldest are evicted beyond it."
    )
    embedding_model: Literal["all-MiniLM-L6-v2"] = Field(
        default="all-MiniLM-L6-v2", description="Sentence embedding model."
    )
    guard: bool = Field(
        default=True,
        description="Refuse candidates whose numbers, entities, negations, units or direction differ.",
    )


class CacheStoreSpec(ApiModel):
    """Where entries live."""

    type: Literal["memory", "redis"] = Field(
        default="memory", description="memory (per replica, lost on restart) or redis (shared, durable)."
    )
    redis_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the Redis URL (redis://...); required for type redis."
    )

    @model_validator(mode="after")
    def _redis_needs_url(self) -> "CacheStoreSpec":
        if self.type == "redis" and self.redis_secret_ref is None:
            raise ValueError("store.redisSecretRef is required when store.type is redis")
        return self


class CachePolicySpec(ApiModel):
    """A response cache that fleets share; entries never cross tenants, models or sampling parameters."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.store) || self.store.type != 'redis' || has(self.store.redisSecretRef)",
                    "store.redisSecretRef is required when store.type is redis",
                )
            ]
        }
    }

    exact: ExactCacheSpec = Field(default_factory=ExactCacheSpec, description="Exact-match layer.")
    semantic: SemanticCacheSpec = Field(default_factory=SemanticCacheSpec, description="Semantic layer.")
    store: CacheStoreSpec = Field(default_factory=CacheStoreSpec, description="Where entries are kept.")
    replicas: int = Field(default=1, ge=0, description="Cache service replicas (share entries only with redis).")


class CachePolicyStatus(ObjectStatus):
    """What the operator observed of a CachePolicy."""

    endpoint: str | None = Field(default=None, description="URL of the cache service.")
    ready_replicas: int | None = Field(default=None, description="Cache service replicas that are ready.")


# --------------------------------------------------------------------------- InferenceFleet


class CascadeSpec(ApiModel):
    """Cheapest tier first; escalate when the answer's confidence is low."""

    confidence: Literal["mean-logprob", "min-logprob"] = Field(
        default="mean-logprob", description="How confidence is computed from the tier's token logprobs."
    )
    threshold: float = Field(
        default=-0.7, le=0, description="Escalate when confidence (a log-probability, <= 0) is below this."
    )
    max_escalations: int = Field(default=2, ge=0, description="Most escalations for one request.")
    judge_tokens: int = Field(
        default=32,
        ge=1,
        description="Streaming: tokens buffered and judged before the stream is released to the client.",
    )


class ComplexitySpec(ApiModel):
    """Pick the starting tier from the request's features."""

    classifier: Literal["heuristic"] = Field(
        default="heuristic", description="Scoring function from request features to a complexity in [0, 1]."
    )
    boundaries: list[float] = Field(
        default_factory=lambda: [0.35, 0.7],
        description="Ascending complexity cut points; a score past the i-th starts at tier i+1.",
    )


class RoutingSpec(ApiModel):
    """How a request that names no tier picks one."""

    mode: Literal["cascade", "complexity", "fixed"] = Field(
        default="cascade",
        description="cascade: cheapest first, escalate on low confidence; complexity: start at the tier "
        "the request's features call for (then cascade from there); fixed: always the first tier.",
    )
    cascade: CascadeSpec = Field(default_factory=CascadeSpec, description="Cascade settings.")
    complexity: ComplexitySpec = Field(default_factory=ComplexitySpec, description="Complexity routing settings.")


class CoalescingSpec(ApiModel):
    """Identical in-flight requests share one upstream call."""

    enabled: bool = Field(default=True, description="Share one upstream call among identical requests.")
    window_ms: int = Field(
        default=0, ge=0, le=1000, description="Hold a new request this long for identical ones to join."
    )


class TokensSpec(ApiModel):
    """Output token caps."""

    default_max_tokens: int | None = Field(
        default=None, ge=1, description="max_tokens for requests that set none."
    )
    max_output_tokens: dict[str, int] = Field(
        default_factory=dict, description="Per-tier cap on max_tokens, by tier name; requests are clamped."
    )


class BudgetSpec(ApiModel):
    """Monthly spend limit."""

    monthly_usd: float | None = Field(
        default=None, alias="monthlyUSD", ge=0, description="Spend limit per calendar month in USD."
    )
    on_exceeded: Literal["cheapest-tier", "reject"] = Field(
        default="cheapest-tier",
        description="Past the limit: serve everything from the cheapest tier, or reject with 429.",
    )


class AuthSpec(ApiModel):
    """Client authentication."""

    api_keys_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding lines KEY=TENANT. Unset: the router is open (tenant 'default').",
    )


class InferenceFleetSpec(ApiModel):
    """The front door that binds tiers, cache and policy."""

    tiers: list[str] = Field(
        min_length=1,
        max_length=16,
        description="ModelTier names in this namespace, cheapest first.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    cache_policy_ref: str | None = Field(default=None, description="CachePolicy name in this namespace.")
    routing: RoutingSpec = Field(default_factory=RoutingSpec, description="Routing policy.")
    coalescing: CoalescingSpec = Field(default_factory=CoalescingSpec, description="Request coalescing.")
    tokens: TokensSpec = Field(default_factory=TokensSpec, description="Output token caps.")
    budget: BudgetSpec = Field(default_factory=BudgetSpec, description="Spend limit.")
    auth: AuthSpec = Field(default_factory=AuthSpec, description="Client authentication.")
    replicas: int = Field(default=1, ge=0, description="Router replicas.")

    @model_validator(mode="after")
    def _unique_tiers(self) -> "InferenceFleetSpec":
        if len(set(self.tiers)) != len(self.tiers):
            raise ValueError("tiers must be unique")
        return self


class InferenceFleetStatus(ObjectStatus):
    """What the operator observed of an InferenceFleet."""

    endpoint: str | None = Field(default=None, description="OpenAI-compatible base URL of the router.")
    ready_tiers: int | None = Field(default=None, description="Tiers that exist and have ready replicas.")
    cache_hit_rate: float | None = Field(default=None, description="Share of requests answered from cache.")
    escalation_rate: float | None = Field(default=None, description="Escalations per routed request.")
    cost_per_million_tokens: float | None = Field(
        default=None, description="Blended cost per 1M tokens across tiers (USD)."
    )
    spend_this_month_usd: float | None = Field(
        default=None, alias="spendThisMonthUSD", description="Spend since the start of the month (USD)."
    )


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class KindInfo:
    """How one kind is named and shown; used for CRDs and the operator."""

    kind: str
    plural: str
    singular: str
    short_names: list[str]
    spec: type
    status: type
    description: str
    printer_columns: list[dict]


def _ready_column() -> dict:
    return {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}


def _age_column() -> dict:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


KINDS: dict[str, KindInfo] = {
    k.kind: k
    for k in (
        KindInfo(
            kind="ModelTier",
            plural="modeltiers",
            singular="modeltier",
            short_names=["mt", "tier"],
            spec=ModelTierSpec,
            status=ModelTierStatus,
            description="One model at one size and precision on one GPU shape, served by vLLM and "
            "autoscaled to a cost-per-token target.",
            printer_columns=[
                _ready_column(),
                {"name": "Model", "type": "string", "jsonPath": ".spec.model.source", "priority": 1},
                {"name": "GPU", "type": "string", "jsonPath": ".spec.gpu.type"},
                {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
                {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
                {"name": "$/1M tok", "type": "number", "jsonPath": ".status.costPerMillionTokens"},
                {"name": "Tok/s", "type": "number", "jsonPath": ".status.tokensPerSecond", "priority": 1},
                _age_column(),
            ],
        ),
        KindInfo(
            kind="CachePolicy",
            plural="cachepolicies",
            singular="cachepolicy",
            short_names=["cp", "tfcache"],
            spec=CachePolicySpec,
            status=CachePolicyStatus,
            description="An exact and semantic response cache that InferenceFleets share.",
            printer_columns=[
                _ready_column(),
                {"name": "Store", "type": "string", "jsonPath": ".spec.store.type"},
                {"name": "Threshold", "type": "number", "jsonPath": ".spec.semantic.similarityThreshold"},
                {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint", "priority": 1},
                _age_column(),
            ],
        ),
        KindInfo(
            kind="InferenceFleet",
            plural="inferencefleets",
            singular="inferencefleet",
            short_names=["fleet", "if"],
            spec=InferenceFleetSpec,
            status=InferenceFleetStatus,
            description="An OpenAI-compatible front door that caches, cascades and routes across ModelTiers.",
            printer_columns=[
                _ready_column(),
                {"name": "Mode", "type": "string", "jsonPath": ".spec.routing.mode"},
                {"name": "Tiers", "type": "integer", "jsonPath": ".status.readyTiers"},
                {"name": "$/1M tok", "type": "number", "jsonPath": ".status.costPerMillionTokens"},
                {"name": "Hit rate", "type": "number", "jsonPath": ".status.cacheHitRate"},
                {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint", "priority": 1},
                _age_column(),
            ],
        ),
    )
}


def parse_spec(kind: str, spec: dict | None):
    """Validate a raw spec of ``kind``; raises pydantic.ValidationError naming the bad field."""
    return KINDS[kind].spec.model_validate(spec or {})
