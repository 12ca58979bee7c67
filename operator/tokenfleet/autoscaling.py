"""Pure autoscaling policy: the replica count of a ModelTier from its engine signals and its ScalingSpec.

``desired_replicas(current, signals, policy, state, now)`` returns a ``Decision`` (replicas, reason,
the next ``ScalerState``, and the figures the operator writes to status). No I/O and no clock:
the operator's timer, the replay (``tokenfleet.replay``) and the unit tables call it alike.
The rules, in order (docs/autoscaling.md explains each):

1. replicas outside [min, max] -> clamp; no signals (Prometheus unreachable) -> hold;
2. at zero replicas: requests held by the router wake the tier, else it stays at zero;
3. no replica reported recently (stale or missing samples) -> hold;
4. a guardrail is breached -> scale up in proportion to the batching load: throughput over
   ``maxUtilization`` of the engine model's saturation throughput, queue per replica over
   ``maxQueuePerReplica``, KV-cache use over ``maxKvCacheUsage``, TTFT p95 over the SLO;
5. otherwise, when cost per 1M tokens is over the target (or no target is set): the fewest
   replicas whose predicted load stays within ``headroom`` x every guardrail, never fewer than
   the count that already meets the target; idle for scaleToZeroAfter with minReplicas 0 -> 0;
6. stabilisation (scale down only to the highest recommendation of the window), cooldowns and
   the maximum step shape the change.

A replica that does not report is neither trusted nor waited for: scale-up sizes from what the
reporting replicas see (a starting replica counts as capacity on its way), and scale-down
assumes each silent replica is as loaded as the busiest reporting one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from tokenfleet.api.common import parse_duration
from tokenfleet.perf import (DEFAULT_MAX_NUM_SEQS, REFERENCE_OUTPUT_TOKENS, REFERENCE_PROMPT_TOKENS, EngineProfile,
                             cost_per_million_tokens, profile_for_tier)

# Reasons (status.lastScale.reason, Events, tokenfleet_operator_scaling_decisions_total{reason}).
UTILIZATION_HIGH, QUEUE_HIGH, KV_HIGH, TTFT_HIGH = "UtilizationHigh", "QueueHigh", "KvCacheHigh", "TtftHigh"
COST_ABOVE_TARGET, UNDERUSED, IDLE, WAKE = "CostAboveTarget", "Underused", "Idle", "Wake"
MIN_REPLICAS, MAX_REPLICAS = "MinReplicas", "MaxReplicas"
HOLD, METRICS_UNAVAILABLE, STABILIZING, COOLDOWN = "Hold", "MetricsUnavailable", "Stabilizing", "Cooldown"


@dataclass(frozen=True)
class ReplicaSignals:
    """What one engine replica reported over the metrics window (means of gauges, rates of counters)."""

    name: str
    running: float = 0.0
    waiting: float = 0.0
    kv_cache_usage: float | None = None
    prompt_tokens_per_second: float = 0.0
    generation_tokens_per_second: float = 0.0
    requests_per_second: float = 0.0  # finished requests
    age_seconds: float = 0.0  # since this replica's newest sample


@dataclass(frozen=True)
class TierSignals:
    """The signals of one tier; ``None`` in their place means Prometheus could not be read."""

    replicas: tuple[ReplicaSignals, ...] = ()
    ttft_p95_seconds: float | None = None  # tier-wide, None when no request got a first token
    router_waiting: float = 0.0  # requests a router holds for this tier while it starts from zero


@dataclass(frozen=True)
class ScalingPolicy:
    """ScalingSpec in seconds and numbers, plus what the engine shape contributes."""

    min_replicas: int = 1
    max_replicas: int = 8
    target_cost_per_million_tokens: float | None = None
    max_utilization: float = 0.85
    max_queue_per_replica: float = 4.0
    max_kv_cache_usage: float = 0.85
    ttft_slo_seconds: float = 2.0
    scale_to_zero_after: float = 900.0
    scale_down_stabilization: float = 300.0
    max_step: int = 4
    scale_up_cooldown: float = 0.0
    scale_down_cooldown: float = 120.0
    replica_hourly_usd: float = 0.0  # all GPUs of one replica
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS  # batch slots of one replica
    profile: EngineProfile | None = None  # None: no utilization guardrail
    max_metric_age: float = 60.0  # a replica whose newest sample is older does not report
    headroom: float = 0.9  # scale down only while the predicted load <= headroom x each guardrail

    @classmethod
    def from_spec(cls, spec, **overrides) -> "ScalingPolicy":
        """The policy of a ModelTierSpec (tokenfleet.api.v1alpha1); ``overrides`` replace fields."""
        s = spec.scaling
        profile = profile_for_tier(spec)
        values = dict(
            min_replicas=s.min_replicas,
            max_replicas=s.max_replicas,
            target_cost_per_million_tokens=s.target_cost_per_million_tokens,
            max_utilization=s.max_utilization,
            max_queue_per_replica=s.max_queue_per_replica,
            max_kv_cache_usage=s.max_kv_cache_usage,
            ttft_slo_seconds=s.ttft_slo_seconds,
            scale_to_zero_after=parse_duration(s.scale_to_zero_after),
            scale_down_stabilization=parse_duration(s.scale_down_stabilization),
            max_step=s.max_step,
            scale_up_cooldown=parse_duration(s.scale_up_cooldown),
            scale_down_cooldown=parse_duration(s.scale_down_cooldown),
            replica_hourly_usd=profile.hourly_usd,
            max_num_seqs=profile.max_num_seqs,
            profile=profile,
        )
        return cls(**{**values, **overrides})


@dataclass(frozen=True)
class ScalerState:
    """What the policy remembers between decisions (kept in memory by its caller)."""

    recommendations: tuple[tuple[float, int], ...] = ()  # (time, replicas) inside the window
    last_scale_up: float | None = None
    last_scale_down: float | None = None
    idle_since: float | None = None


@dataclass(frozen=True)
class Load:
    """Tier-wide sums over the replicas that report."""

    reporting: int
    silent: int  # replicas the Deployment runs that did not report
    running: float
    waiting: float
    demand: float  # running + waiting + router-held
    kv_sum: float  # sum of KV-cache use over the replicas that report it
    kv_reporting: int
    kv_running: float  # running requests of the replicas that report KV use
    tokens_per_second: float  # prompt + generated
    capacity: float | None  # one replica's saturation tokens/s at the observed mix (engine model)
    busiest_demand: float
    busiest_kv: float
    busiest_tps: float

    @property
    def kv_mean(self) -> float | None:
        return self.kv_sum / self.kv_reporting if self.kv_reporting else None

    @property
    def utilization(self) -> float | None:
        """Mean share of the saturation throughput in use per reporting replica."""
        return self.tokens_per_second / self.reporting / self.capacity if self.capacity and self.reporting else None


@dataclass(frozen=True)
class Decision:
    """The outcome of one decision."""

    replicas: int  # what the Deployment should run (== current when holding)
    reason: str
    message: str
    state: ScalerState
    recommendation: int | None = None  # before stabilisation, cooldown and step limits
    tokens_per_second: float | None = None
    cost_per_million_tokens: float | None = None
    queue_depth: float | None = None
    kv_cache_usage: float | None = None
    utilization: float | None = None
    ttft_p95_seconds: float | None = None


def replica_capacity(profile: EngineProfile | None, prompt_tps: float, generation_tps: float,
                     requests_per_second: float, kv_batch: float | None = None) -> float | None:
    """Saturation tokens/s (prompt + generated) of one replica at the observed mean request shape.

    ``kv_batch``, the requests a full KV cache holds at the observed KV use per running request,
    caps the batch where the engine model's estimate from the mean request is too generous (the
    long requests of a mixed load hold more KV than the mean one).
    """
    if profile is None:
        return None
    if requests_per_second > 0 and generation_tps > 0:
        prompt, output = prompt_tps / requests_per_second, generation_tps / requests_per_second
    else:
        prompt, output = REFERENCE_PROMPT_TOKENS, REFERENCE_OUTPUT_TOKENS
    output = max(output, 1.0)
    tps = profile.saturation_output_tps(prompt, output)
    if kv_batch is not None and kv_batch >= 1.0:
        tps = min(tps, profile.steady_output_tps(int(kv_batch), prompt, output))
    return tps * (prompt + output) / output


KV_BATCH_MIN_USAGE = 0.2  # below this KV use, the KV held per request says little about a full cache


def kv_batch(replicas: list[ReplicaSignals]) -> float | None:
    """Requests a full KV cache would hold at the KV use per running request observed where it is busy."""
    busy = [r for r in replicas if r.kv_cache_usage is not None and r.kv_cache_usage >= KV_BATCH_MIN_USAGE
            and r.running > 0]
    if not busy:
        return None
    return sum(r.running for r in busy) / sum(r.kv_cache_usage for r in busy)


def aggregate(signals: TierSignals, current: int, policy: ScalingPolicy) -> Load:
    """Sum the fresh replicas' signals; older samples than ``max_metric_age`` count as silent."""
    fresh = [r for r in signals.replicas if r.age_seconds <= policy.max_metric_age]
    kv = [r.kv_cache_usage for r in fresh if r.kv_cache_usage is not None]
    running, waiting = sum(r.running for r in fresh), sum(r.waiting for r in fresh)
    prompt = sum(r.prompt_tokens_per_second for r in fresh)
    generation = sum(r.generation_tokens_per_second for r in fresh)
    return Load(
        reporting=len(fresh),
        silent=max(0, current - len(fresh)),
        running=running,
        waiting=waiting,
        demand=running + waiting + signals.router_waiting,
        kv_sum=sum(kv),
        kv_reporting=len(kv),
        kv_running=sum(r.running for r in fresh if r.kv_cache_usage is not None),
        tokens_per_second=prompt + generation,
        capacity=replica_capacity(policy.profile, prompt, generation, sum(r.requests_per_second for r in fresh),
                                  kv_batch=kv_batch(fresh)),
        busiest_demand=max((r.running + r.waiting for r in fresh), default=0.0),
        busiest_kv=max(kv, default=0.0),
        busiest_tps=max((r.prompt_tokens_per_second + r.generation_tokens_per_second for r in fresh), default=0.0),
    )


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)


def scale_up_need(load: Load, ttft: float | None, p: ScalingPolicy,
                  just_scaled_down: bool = False) -> tuple[int, str, str] | None:
    """Replicas the breached guardrails call for (the largest), or None when none is breached.

    For one stabilisation window after a scale-down, the utilization guardrail stands at
    maxUtilization / headroom: the scale-down forecast kept the load under headroom x maxUtilization,
    and noise around it must not turn the decision round (queue, KV and TTFT stay armed).
    """
    n = load.reporting
    needs: list[tuple[int, str, str]] = []
    util = load.utilization
    limit = min(1.0, p.max_utilization / p.headroom) if just_scaled_down else p.max_utilization
    if util is not None and util > limit:
        needs.append((_ceil(load.tokens_per_second / (p.max_utilization * load.capacity)), UTILIZATION_HIGH,
                      f"throughput {util:.0%} of saturation per replica > {limit:.0%}"))
    queue = load.waiting / n
    if queue > p.max_queue_per_replica:
        per_replica = load.running / n + p.max_queue_per_replica  # the batch it holds plus its allowed queue
        need = _ceil(load.demand / per_replica) if per_replica > 0 else n + p.max_step
        needs.append((need, QUEUE_HIGH, f"queue {queue:.1f} per replica > {p.max_queue_per_replica:g}"))
    kv = load.kv_mean
    if kv is not None and kv > p.max_kv_cache_usage:
        need = _ceil(load.kv_sum / p.max_kv_cache_usage) if p.max_kv_cache_usage > 0 else n + p.max_step
        needs.append((need, KV_HIGH, f"KV cache {kv:.0%} > {p.max_kv_cache_usage:.0%}"))
    if ttft is not None and ttft > p.ttft_slo_seconds and busy(load, p):
        # Queueing makes TTFT grow much faster than load: one more replica than report, per start-up.
        needs.append((n + 1, TTFT_HIGH, f"TTFT p95 {ttft:.2f}s > SLO {p.ttft_slo_seconds:g}s"))
    return max(needs, key=lambda x: x[0]) if needs else None


def busy(load: Load, p: ScalingPolicy) -> bool:
    """Whether the batches are full enough for TTFT to come from load rather than from prompt length.

    A tier below the scale-down headroom of its utilization guardrail that misses a TTFT SLO does so
    because its prompts take that long to prefill on its GPU: more replicas would cost without helping.
    Without an engine profile every TTFT breach counts.
    """
    util = load.utilization
    return util is None or util > p.headroom * p.max_utilization


def batch_limit(load: Load, p: ScalingPolicy) -> float:
    """The requests one replica's batch holds before the rest wait: what a scale-down forecast assumes.

    A standing queue (a request or more waiting per replica on average) means the batch is as full
    as something lets it be (slots, KV cache, an engine flag the policy does not see): its observed
    size. Otherwise the batch can grow until maxNumSeqs or until the KV cache is full at the observed
    KV use per running request. A brief wait for admission (vLLM admits prompts within a per-step
    token budget) is a throughput limit, which the utilization guardrail covers.
    """
    if load.waiting >= load.reporting:
        return min(float(p.max_num_seqs), max(load.running / load.reporting, 1.0))
    if load.kv_sum > 0 and load.kv_running > 0:
        return min(float(p.max_num_seqs), load.kv_running / load.kv_sum)
    return float(p.max_num_seqs)


def fits(load: Load, k: int, p: ScalingPolicy) -> bool:
    """Whether ``k`` replicas would carry the load within ``headroom`` x every guardrail.

    Throughput, requests and KV use spread evenly over ``k`` (requests beyond a replica's batch,
    ``batch_limit``, wait in its queue); each silent replica is assumed as loaded as the busiest
    reporting one. TTFT has no model to predict it: over the SLO it scales
    up when the batches are busy (and a scale-down never makes them busy), else it is prompt-bound.
    """
    h = p.headroom
    tps = load.tokens_per_second + load.silent * load.busiest_tps
    if load.capacity and tps / k > h * p.max_utilization * load.capacity:
        return False
    demand = (load.demand + load.silent * load.busiest_demand) / k
    if demand > h * p.max_num_seqs or max(0.0, demand - batch_limit(load, p)) > h * p.max_queue_per_replica:
        return False
    return not (load.kv_reporting and (load.kv_sum + load.silent * load.busiest_kv) / k > h * p.max_kv_cache_usage)


def scale_down_target(current: int, load: Load, p: ScalingPolicy) -> tuple[int, str, str]:
    """The fewest replicas that fit, never fewer than the count that already meets the cost target."""
    floor = max(p.min_replicas, 1)
    cost = cost_per_million_tokens(current, p.replica_hourly_usd, load.tokens_per_second)
    target = p.target_cost_per_million_tokens
    if target is not None and cost is not None and cost <= target:
        return current, HOLD, f"cost ${cost:.3f}/1M tokens within target ${target:g}"
    if target is not None and load.tokens_per_second > 0 and p.replica_hourly_usd > 0:
        floor = max(floor, math.floor(target * load.tokens_per_second * 3600 / 1e6 / p.replica_hourly_usd))
    k = current
    while k - 1 >= floor and fits(load, k - 1, p):
        k -= 1
    if k == current:
        why = "fewer replicas would come within the guardrails' headroom" if current > floor else "at the floor"
        return current, HOLD, why
    reason = COST_ABOVE_TARGET if target is not None else UNDERUSED
    shown = f"${cost:.3f}/1M tokens" if cost is not None else "no tokens"
    return k, reason, f"{shown}; {k} replicas keep the load within {p.headroom:.0%} of the guardrails"


def _bounded(desired: int, p: ScalingPolicy) -> int:
    return min(max(desired, p.min_replicas), p.max_replicas)


def _figures(current: int, load: Load, ttft: float | None, p: ScalingPolicy) -> dict:
    return dict(
        tokens_per_second=load.tokens_per_second,
        cost_per_million_tokens=cost_per_million_tokens(current, p.replica_hourly_usd, load.tokens_per_second),
        queue_depth=load.waiting,
        kv_cache_usage=load.kv_mean,
        utilization=load.utilization,
        ttft_p95_seconds=ttft,
    )


def _track_idle(state: ScalerState, load: Load, now: float) -> ScalerState:
    if load.demand > 0 or load.tokens_per_second > 0:
        return replace(state, idle_since=None) if state.idle_since is not None else state
    return state if state.idle_since is not None else replace(state, idle_since=now)


def _from_zero(signals: TierSignals, p: ScalingPolicy, state: ScalerState, now: float) -> Decision:
    demand = signals.router_waiting + sum(r.running + r.waiting for r in signals.replicas)
    if demand <= 0 or p.max_replicas <= 0:
        return Decision(0, HOLD, "at zero replicas and no request waits", state,
                        tokens_per_second=0.0, queue_depth=0.0)
    to = min(max(1, p.min_replicas), p.max_replicas)
    woke = ScalerState(recommendations=((now, to),), last_scale_up=now)
    return Decision(to, WAKE, f"{demand:g} requests wait for the tier at zero replicas", woke,
                    recommendation=to, tokens_per_second=0.0, queue_depth=demand)


def _shape(current: int, raw: int, reason: str, message: str, state: ScalerState, now: float,
           p: ScalingPolicy, figures: dict) -> Decision:
    """Apply stabilisation, cooldowns and the maximum step to the raw recommendation."""
    # A fresh state (operator start) has seen nothing: it counts the current size as recommended now.
    seen = state.recommendations or ((now, current),)
    window = [(t, r) for t, r in seen if now - t < p.scale_down_stabilization]
    state = replace(state, recommendations=(*window, (now, raw)))
    hold = dict(state=state, recommendation=raw, **figures)
    if raw > current:
        if state.last_scale_up is not None and now - state.last_scale_up < p.scale_up_cooldown:
            return Decision(current, COOLDOWN, f"{message}; scaled up {now - state.last_scale_up:.0f}s ago", **hold)
        to = min(raw, current + p.max_step)
        return Decision(to, reason, message, replace(state, last_scale_up=now), recommendation=raw, **figures)
    if raw == current:
        return Decision(current, HOLD, message, **hold)
    to_zero = raw == 0 and reason == IDLE  # idleness for scaleToZeroAfter is its own stabilisation
    stabilized = raw if to_zero else max(r for _, r in state.recommendations)
    if stabilized >= current:
        return Decision(current, STABILIZING, f"{message}; highest recommendation in the last "
                        f"{p.scale_down_stabilization:g}s is {stabilized}", **hold)
    if state.last_scale_down is not None and now - state.last_scale_down < p.scale_down_cooldown:
        return Decision(current, COOLDOWN, f"{message}; scaled down {now - state.last_scale_down:.0f}s ago", **hold)
    to = max(stabilized, current - p.max_step)
    return Decision(to, reason, message, replace(state, last_scale_down=now), recommendation=raw, **figures)


def desired_replicas(current: int, signals: TierSignals | None, policy: ScalingPolicy,
                     state: ScalerState = ScalerState(), now: float = 0.0) -> Decision:
    """The replicas a tier should run now, why, and the state to pass to the next call.

    ``current`` is the Deployment's replica count, ``signals`` None when Prometheus could not be
    read, ``now`` any clock in seconds (the same one on every call).
    """
    p = policy
    bounded = _bounded(current, p)
    if bounded != current:
        reason = MIN_REPLICAS if bounded > current else MAX_REPLICAS
        return Decision(bounded, reason, f"{current} replicas outside [{p.min_replicas}, {p.max_replicas}]",
                        state, recommendation=bounded)
    if signals is None:
        return Decision(current, METRICS_UNAVAILABLE, "Prometheus could not be read; holding replicas", state)
    if current == 0:
        return _from_zero(signals, p, state, now)
    load = aggregate(signals, current, p)
    if load.reporting == 0:
        return Decision(current, METRICS_UNAVAILABLE,
                        f"none of {current} replicas reported in the last {p.max_metric_age:g}s; holding", state)
    ttft = signals.ttft_p95_seconds
    state = _track_idle(state, load, now)
    recent = state.last_scale_down is not None and now - state.last_scale_down < p.scale_down_stabilization
    up = scale_up_need(load, ttft, p, just_scaled_down=recent)
    idle_for = now - state.idle_since if state.idle_since is not None else -1.0
    if up is not None:
        raw, reason, message = up
        if raw <= current:  # breached, but the replicas running or starting already cover it
            raw, message = current, f"{message}; {current} replicas ({load.silent} not reporting) cover it"
    elif p.min_replicas == 0 and idle_for >= p.scale_to_zero_after:
        raw, reason, message = 0, IDLE, f"no tokens and no requests for {idle_for:.0f}s"
    else:
        raw, reason, message = scale_down_target(current, load, p)
    if ttft is not None and ttft > p.ttft_slo_seconds and not busy(load, p):
        message += (f"; TTFT p95 {ttft:.2f}s > SLO {p.ttft_slo_seconds:g}s with batches under "
                    f"{p.headroom * p.max_utilization:.0%} busy: prompts this long take that to prefill here")
    return _shape(current, _bounded(raw, p), reason, message, state, now, p, _figures(current, load, ttft, p))
