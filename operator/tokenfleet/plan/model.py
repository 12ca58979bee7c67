"""The what-if model behind ``tokenfleet plan``: monthly cost of a fleet on a trace, lever by lever.

A waterfall from a baseline that uses no lever to the fleet as written, adding one lever at a
time (docs/cost-model.md explains each step and its assumptions):

1. baseline: the fleet's largest tier (last in ``spec.tiers``) at 16-bit precision (on as many
   GPUs as it then needs), serving one request at a time, static, sized for the peak window;
2. + batching: vLLM's continuous batching at the tier's ``maxNumSeqs``;
3. + quantization: the tier's own weight and KV-cache precision and GPU count;
4. + autoscaling: tokenfleet's policy (``autoscaling.desired_replicas``) instead of a static fleet;
5. + cascade: every tier of the fleet, cheapest first, each autoscaled; a request is answered by
   tier i with the share ``tier_shares[i]`` and passes through every cheaper tier before it;
6. + cache: a share ``cache_hit_rate`` of requests answered by the cache (no GPU work).

Autoscaled stages replay the trace through the same policy and the same engine model as the
operator (``tokenfleet.replay``); static stages need no replay: N replicas cost N x price.
Each tier's bill splits into C_input and C_output (its tokens at the tier's saturation prices,
``perf.token_prices``: what perfectly packed GPUs would cost) and C_infra (the rest: capacity
that waits, warms up or is held in reserve), plus the router's and cache's CPUs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from tokenfleet.api.v1alpha1 import CachePolicySpec, InferenceFleetSpec, ModelTierSpec
from tokenfleet.autoscaling import replica_capacity
from tokenfleet.perf import STARTUP_SECONDS, EngineProfile
from tokenfleet.replay import Request

HOURS_PER_MONTH = 730.0  # the cloud providers' billing month (8,760 h / 12)
CPU_HOURLY_USD = 0.05  # one vCPU-hour of a general-purpose node (about AWS m7i on-demand per vCPU)
DEFAULT_CACHE_HIT_RATE = 0.2
DEFAULT_SMALL_TIER_SHARE = 0.6
DEFAULT_PEAK_WINDOW = 60.0


@dataclass(frozen=True)
class Assumptions:
    """What a trace cannot tell; every field is a ``tokenfleet plan`` flag (docs/cost-model.md)."""

    cache_hit_rate: float | None = None  # None: DEFAULT_CACHE_HIT_RATE with a cachePolicyRef, else 0
    tier_shares: tuple[float, ...] | None = None  # answered-by share per tier; None: from small_tier_share
    small_tier_share: float = DEFAULT_SMALL_TIER_SHARE
    baseline_max_num_seqs: int = 1  # the baseline's batch: 1 = no batching
    peak_window: float = DEFAULT_PEAK_WINDOW
    startup_seconds: float = STARTUP_SECONDS
    cpu_hourly_usd: float = CPU_HOURLY_USD
    hours_per_month: float = HOURS_PER_MONTH
    seed: int = 0


@dataclass(frozen=True)
class FleetInput:
    """A fleet as ``plan`` needs it: its tiers in order, its cache policy (if any) and its spec."""

    name: str
    tiers: tuple[tuple[str, ModelTierSpec], ...]
    fleet: InferenceFleetSpec
    cache: CachePolicySpec | None = None


@dataclass(frozen=True)
class TierBill:
    """One tier's monthly bill in one stage."""

    tier: str
    shape: str  # e.g. "70.6B awq on 2x nvidia-h100, autoscaled"
    requests: int  # of the trace
    replicas: float  # mean replicas
    monthly_usd: float
    c_input: float
    c_output: float
    c_infra: float
    slo_attainment: float | None = None  # share of requests within the TTFT SLO (replayed stages)


@dataclass(frozen=True)
class Stage:
    """The fleet after one more lever."""

    name: str
    description: str
    tiers: tuple[TierBill, ...]
    overhead: tuple[tuple[str, float], ...] = ()  # (component, monthly USD): router, cache CPUs

    @property
    def monthly_usd(self) -> float:
        return sum(t.monthly_usd for t in self.tiers) + sum(v for _, v in self.overhead)

    @property
    def c_input(self) -> float:
        return sum(t.c_input for t in self.tiers)

    @property
    def c_output(self) -> float:
        return sum(t.c_output for t in self.tiers)

    @property
    def c_infra(self) -> float:
        return sum(t.c_infra for t in self.tiers) + sum(v for _, v in self.overhead)


@dataclass(frozen=True)
class Plan:
    """The whole what-if: the traffic, the stages, and the fleet's own (last) stage."""

    fleet: str
    requests: int
    period_seconds: float  # the time the trace stands for (see trace_period)
    tokens: int  # prompt + output tokens of the trace
    prompt_tokens: int
    monthly_requests: float
    monthly_tokens: float
    stages: tuple[Stage, ...]
    assumptions: Assumptions
    cache_hit_rate: float
    tier_shares: tuple[float, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def cost_per_million_tokens(self, stage: Stage) -> float:
        return stage.monthly_usd / self.monthly_tokens * 1e6 if self.monthly_tokens else math.nan


# --------------------------------------------------------------------------- traffic


def trace_period(requests: list[Request]) -> float:
    """Seconds of traffic the trace stands for: n arrivals spanning S seconds stand for S x n / (n-1).

    ValueError when the arrivals do not span any time (one request, or all at once): such a trace
    has no rate, and any monthly figure drawn from it would be invented.
    """
    n = len(requests)
    span = max(r.arrival for r in requests) - min(r.arrival for r in requests) if requests else 0.0
    if n < 2 or span <= 0:
        raise ValueError(f"the trace's {n} request(s) arrive at one instant: it needs arrivals at two different "
                         "times at least to tell a rate")
    return span * n / (n - 1)


def windows(requests: list[Request], window: float) -> list[list[Request]]:
    """The requests of each ``window``-second interval (empty ones dropped)."""
    out: dict[int, list[Request]] = {}
    for r in requests:
        out.setdefault(int(r.arrival // window), []).append(r)
    return [out[k] for k in sorted(out)]


def window_replicas(requests: list[Request], profile: EngineProfile, max_utilization: float,
                    window: float = DEFAULT_PEAK_WINDOW) -> list[int]:
    """Replicas each ``window``-second interval needs within ``max_utilization`` of saturation (engine model)."""
    out = []
    for group in windows(requests, window):
        prompt = sum(r.prompt_tokens for r in group) / window
        output = sum(r.output_tokens for r in group) / window
        capacity = replica_capacity(profile, prompt, output, len(group) / window)
        out.append(max(1, math.ceil((prompt + output) / (max_utilization * capacity) - 1e-9)))
    return out


def static_replicas(requests: list[Request], profile: EngineProfile, max_utilization: float,
                    window: float = DEFAULT_PEAK_WINDOW) -> int:
    """Replicas that keep the busiest window within ``max_utilization`` of saturation (engine model)."""
    return max(window_replicas(requests, profile, max_utilization, window), default=1)


def serial_seconds(profile: EngineProfile, prompt: int, output: int, budget: int) -> float:
    """Seconds one request takes alone on a replica (batch of one): chunked prefill, then decode steps.

    The same steps ``BatchSimulator`` takes for a lone request, summed in closed form.
    """
    ms, done = 0.0, 0
    while done < prompt:
        chunk = min(budget, prompt - done)
        done += chunk
        ms += profile.step_ms(1, done, chunk)
    steps = output - 1
    ms += steps * (profile.a_ms + profile.b_ms) + profile.kv_ms_per_token * (steps * prompt + steps * output / 2)
    return ms / 1000.0


def serial_replicas(requests: list[Request], profile: EngineProfile, max_utilization: float, budget: int,
                    window: float = DEFAULT_PEAK_WINDOW) -> int:
    """Replicas without batching: the busiest window's work over ``max_utilization`` x the window."""
    need = 1
    for group in windows(requests, window):
        busy = sum(serial_seconds(profile, r.prompt_tokens, r.output_tokens, budget) for r in group)
        need = max(need, math.ceil(busy / (window * max_utilization) - 1e-9))
    return need


def split_cache(requests: list[Request], hit_rate: float, seed: int) -> list[Request]:
    """The requests that miss the cache: each hits with probability ``hit_rate`` (seeded)."""
    rng = random.Random(f"cache/{seed}")
    return [r for r in requests if rng.random() >= hit_rate]


def assign_tiers(requests: list[Request], shares: tuple[float, ...], seed: int) -> list[int]:
    """The tier that answers each request, drawn with ``shares`` (seeded)."""
    rng = random.Random(f"cascade/{seed}")
    return [rng.choices(range(len(shares)), shares)[0] for _ in requests]


def default_shares(tiers: int, small: float) -> tuple[float, ...]:
    """Each tier answers a share ``small`` of what reaches it; the last answers all that is left."""
    shares, left = [], 1.0
    for _ in range(tiers - 1):
        shares.append(left * small)
        left -= left * small
    return (*shares, left)


@dataclass(frozen=True)
class BreakEven:
    """Self-hosting the fleet against an API priced per token, on the trace's request mix."""

    api_input_per_million: float
    api_output_per_million: float
    api_monthly_usd: float  # the trace's traffic, a month of it, on the API
    self_monthly_usd: float  # the fleet (last stage) at the trace's volume
    floor_monthly_usd: float  # what the fleet costs with no traffic: minReplicas and the router/cache CPUs
    requests_per_day: float  # the trace's volume
    break_even_requests_per_day: float | None  # None: the API is cheaper at every volume

    def self_cost(self, requests_per_day: float) -> float:
        """Monthly self-hosting cost at a volume: the floor, or the trace's cost per request, whichever is more."""
        return max(self.floor_monthly_usd, self.self_monthly_usd * requests_per_day / self.requests_per_day)

    def api_cost(self, requests_per_day: float) -> float:
        return self.api_monthly_usd * requests_per_day / self.requests_per_day


def break_even(plan: Plan, floor_monthly_usd: float, price_input: float, price_output: float) -> BreakEven:
    """Where self-hosting and the API cost the same, in requests per day.

    Linear model: the API costs the same per request at any volume; the fleet costs its floor
    (always-on replicas, router and cache) or its cost per request at the trace's volume times
    the volume, whichever is more. When the API is dearer per request, the two cross where the
    API's bill reaches the fleet's floor; when it is not, the API is cheaper at every volume.
    """
    stage = plan.stages[-1]
    month = plan.monthly_tokens / plan.tokens if plan.tokens else 0.0
    output_tokens = plan.tokens - plan.prompt_tokens
    api_monthly = (plan.prompt_tokens * price_input + output_tokens * price_output) / 1e6 * month
    per_day = plan.monthly_requests / (plan.assumptions.hours_per_month / 24.0)
    crossing = None
    if api_monthly > stage.monthly_usd:
        crossing = floor_monthly_usd / api_monthly * per_day
    return BreakEven(price_input, price_output, api_monthly, stage.monthly_usd, floor_monthly_usd, per_day, crossing)
