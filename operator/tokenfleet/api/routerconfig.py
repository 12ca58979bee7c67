"""The router's configuration: one schema, rendered by the operator and read by the router.

The operator resolves an InferenceFleet (tier endpoints, prices, cache endpoint, policy) into
a ``RouterConfig`` and stores it as JSON in the router's ConfigMap; ``tokenfleet router
--config FILE`` reads the same model. ``tokenfleet router --tier NAME=URL ...`` builds one
from flags.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import Field, model_validator

from tokenfleet.api.common import ApiModel
from tokenfleet.api.v1alpha1 import BudgetSpec, CoalescingSpec, RoutingSpec

CONFIG_KEY = "router.json"  # key in the router ConfigMap


class TierEndpoint(ApiModel):
    """One tier as the router reaches it."""

    name: str = Field(min_length=1, description="Tier name (the ModelTier's name); a request's model may name it.")
    url: str = Field(pattern=r"^http://[^/]", description="OpenAI API base URL of the tier, ending in /v1; "
                     "http:// only (tiers are in-cluster services; the router does not speak TLS to them).")
    served_model: str = Field(min_length=1, description="Model name to send upstream.")
    input_cost_per_million: float = Field(default=0.0, ge=0, description="USD per 1M prompt tokens.")
    output_cost_per_million: float = Field(default=0.0, ge=0, description="USD per 1M generated tokens.")
    max_output_tokens: int | None = Field(default=None, ge=1, description="Cap on max_tokens for this tier.")
    max_concurrency: int = Field(default=256, ge=1, description="Most in-flight requests the router sends here.")
    max_queue: int = Field(
        default=1024, ge=0, description="Most requests waiting for a slot here before the tier counts as saturated."
    )
    scales_to_zero: bool = Field(
        default=False,
        description="The tier may have no replicas (minReplicas 0): an unreachable tier is then waited for "
        "(up to limits.coldStartWaitSeconds) while the autoscaler starts it, instead of skipped.",
    )


class CacheClientConfig(ApiModel):
    """How the router uses caches."""

    url: str | None = Field(default=None, description="Cache service base URL; unset: in-process cache only.")
    timeout_ms: int = Field(
        default=100, ge=1,
        description="Cache service request timeout; past it, fail open. Embedding and micro-batching take "
        "a few ms on an idle node and tens of ms on a busy one, hence 100 ms.",
    )
    local_entries: int = Field(default=10_000, ge=0, description="In-process exact LRU size; 0 disables it.")
    local_ttl_seconds: float = Field(default=300, gt=0, description="In-process entry lifetime.")
    invalidation_poll_seconds: float = Field(
        default=2, ge=0,
        description="How often the router asks the cache service what it invalidated, to drop those answers "
        "from its in-process LRU too; 0: never (an invalidated answer is then served from there for up to "
        "localTtlSeconds).",
    )
    cache_nondeterministic: bool = Field(
        default=False, description="Also cache requests with temperature > 0 (off: only deterministic ones)."
    )


class LimitsConfig(ApiModel):
    """Request limits and timeouts."""

    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="Largest request body; larger -> 413.")
    upstream_timeout_seconds: float = Field(default=300, gt=0, description="Timeout of one upstream call.")
    connect_timeout_seconds: float = Field(default=2, gt=0, description="Timeout to connect to a tier.")
    cold_start_wait_seconds: float = Field(
        default=120, ge=0, description="How long a request waits for a tier that is starting from zero."
    )


class RouterConfig(ApiModel):
    """Everything the router needs to serve one fleet."""

    fleet: str = Field(default="tokenfleet", min_length=1, description="Fleet name; also accepted as model name.")
    tiers: list[TierEndpoint] = Field(min_length=1, description="Tiers, cheapest first.")
    routing: RoutingSpec = Field(default_factory=RoutingSpec, description="Routing policy.")
    coalescing: CoalescingSpec = Field(default_factory=CoalescingSpec, description="Request coalescing.")
    default_max_tokens: int | None = Field(default=None, ge=1, description="max_tokens when a request sets none.")
    budget: BudgetSpec = Field(default_factory=BudgetSpec, description="Monthly spend limit.")
    cache: CacheClientConfig = Field(default_factory=CacheClientConfig, description="Caching.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Limits and timeouts.")
    api_keys_file: str | None = Field(
        default=None, description="File of KEY=TENANT lines; unset: open router, tenant 'default'."
    )

    @model_validator(mode="after")
    def _unique_tier_names(self) -> "RouterConfig":
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique: {names}")
        return self

    def to_json(self) -> str:
        """Stable JSON as stored in the ConfigMap."""
        return json.dumps(self.to_wire(), indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: str | Path) -> "RouterConfig":
        """Read a config file (JSON or YAML)."""
        text = Path(path).read_text()
        return cls.model_validate(yaml.safe_load(text))
