"""Table tests of the pure autoscaling policy (tokenfleet.autoscaling.desired_replicas)."""

from __future__ import annotations

import dataclasses

import pytest

from tokenfleet.api.v1alpha1 import ModelTierSpec
from tokenfleet.autoscaling import (
    ReplicaSignals,
    ScalerState,
    ScalingPolicy,
    TierSignals,
    desired_replicas,
    replica_capacity,
)
from tokenfleet.perf import REFERENCE_OUTPUT_TOKENS, REFERENCE_PROMPT_TOKENS, build_profile

NOW = 10_000.0
OLD = ScalerState(recommendations=((NOW - 3600, 99),))  # seen before, nothing left in the window
PROFILE = build_profile(parameters_b=8, weights="awq", gpu_type="nvidia-l4")
CAPACITY = replica_capacity(PROFILE, 0, 0, 0)  # saturation tokens/s at the reference request shape
RPS = 1.0  # requests/s per replica in `busy`, with the reference prompt and output lengths


def rep(running=1.0, waiting=0.0, kv=0.1, tps=100.0, rps=None, age=0.0, name=None) -> ReplicaSignals:
    """A replica; ``tps`` is split between prompt and generated tokens like the reference shape."""
    share = REFERENCE_PROMPT_TOKENS / (REFERENCE_PROMPT_TOKENS + REFERENCE_OUTPUT_TOKENS)
    rps = tps / (REFERENCE_PROMPT_TOKENS + REFERENCE_OUTPUT_TOKENS) if rps is None else rps
    return ReplicaSignals(name or f"r{id(object())}", running, waiting, kv, tps * share, tps * (1 - share), rps, age)


def tier(*replicas, ttft=None, held=0.0) -> TierSignals:
    return TierSignals(tuple(dataclasses.replace(r, name=f"r{i}") for i, r in enumerate(replicas)), ttft, held)


def policy(**kw) -> ScalingPolicy:
    base = dict(min_replicas=1, max_replicas=10, replica_hourly_usd=1.0, max_num_seqs=256,
                scale_down_stabilization=300, scale_down_cooldown=120, scale_to_zero_after=900)
    return ScalingPolicy(**{**base, **kw})


def at_util(u: float) -> ReplicaSignals:
    """A replica running at ``u`` of its saturation throughput (engine model, reference shape)."""
    return rep(tps=u * CAPACITY)


CASES = [
    # (id, current, signals, policy, state, expected replicas, expected reason)
    ("prometheus down holds", 3, None, policy(), OLD, 3, "MetricsUnavailable"),
    ("no replica reports: holds", 3, tier(), policy(), OLD, 3, "MetricsUnavailable"),
    ("only stale samples: holds", 3, tier(rep(waiting=50, age=120), rep(waiting=50, age=90)), policy(), OLD,
     3, "MetricsUnavailable"),
    ("above maxReplicas: clamped, even without metrics", 12, None, policy(max_replicas=8), OLD, 8, "MaxReplicas"),
    ("below minReplicas: clamped", 1, tier(rep()), policy(min_replicas=3), OLD, 3, "MinReplicas"),
    # scale up, each guardrail
    ("queue over the guardrail: sized by demand over batch + allowed queue", 2,
     tier(rep(running=10, waiting=10), rep(running=10, waiting=10)), policy(max_queue_per_replica=4), OLD,
     3, "QueueHigh"),
    ("queue at the guardrail: no change", 2, tier(rep(running=10, waiting=4), rep(running=10, waiting=4)),
     policy(max_queue_per_replica=4), OLD, 2, "Hold"),
    ("KV-cache use over the guardrail: proportional", 4, tier(*[rep(kv=0.95)] * 4),
     policy(max_kv_cache_usage=0.85), OLD, 5, "KvCacheHigh"),
    ("utilization over the guardrail: proportional to throughput", 4, tier(*[at_util(0.95)] * 4),
     policy(profile=PROFILE, max_utilization=0.85), OLD, 5, "UtilizationHigh"),
    ("TTFT over the SLO with busy batches: one more replica", 3, tier(*[at_util(0.8)] * 3, ttft=2.5),
     policy(profile=PROFILE, ttft_slo_seconds=2.0), OLD, 4, "TtftHigh"),
    ("TTFT over the SLO without an engine model: one more replica", 3, tier(rep(), rep(), rep(), ttft=2.5),
     policy(profile=None, ttft_slo_seconds=2.0), OLD, 4, "TtftHigh"),
    ("TTFT over the SLO with half-empty batches: long prompts, no scale-up", 3,
     tier(*[at_util(0.6)] * 3, ttft=2.5), policy(profile=PROFILE, ttft_slo_seconds=2.0), OLD, 3, "Hold"),
    ("the largest need wins", 2, tier(rep(running=10, waiting=10, kv=0.99), rep(running=10, waiting=10, kv=0.99)),
     policy(max_kv_cache_usage=0.5), OLD, 4, "KvCacheHigh"),
    ("max step bounds a scale-up", 2, tier(rep(running=1, waiting=200), rep(running=1, waiting=200)),
     policy(max_step=4), OLD, 6, "QueueHigh"),
    ("maxReplicas bounds a scale-up", 6, tier(*[rep(running=1, waiting=200)] * 6), policy(max_replicas=7), OLD,
     7, "QueueHigh"),
    ("scale-up cooldown", 2, tier(rep(running=10, waiting=10), rep(running=10, waiting=10)),
     policy(scale_up_cooldown=60), ScalerState(last_scale_up=NOW - 30), 2, "Cooldown"),
    ("a starting replica counts as capacity on its way", 4,
     tier(rep(running=10, waiting=5), rep(running=10, waiting=5), rep(running=10, waiting=5)),
     policy(max_queue_per_replica=4), OLD, 4, "Hold"),
    ("a silent replica does not block the others' scale-up", 3,
     tier(rep(running=10, waiting=30), rep(running=10, waiting=30)), policy(max_queue_per_replica=4), OLD,
     6, "QueueHigh"),
    # scale down
    ("cost over target and load fits fewer: scale down", 4, tier(*[at_util(0.1)] * 4),
     policy(profile=PROFILE, target_cost_per_million_tokens=0.01), OLD, 1, "CostAboveTarget"),
    ("cost within target: no scale-down however idle", 4, tier(*[at_util(0.1)] * 4),
     policy(profile=PROFILE, target_cost_per_million_tokens=100.0), OLD, 4, "Hold"),
    ("never fewer than the count that already meets the target", 5, tier(*[rep(tps=200)] * 5),
     policy(target_cost_per_million_tokens=0.6), OLD, 2, "CostAboveTarget"),
    ("no target: scale down to the fewest replicas inside the guardrails", 4, tier(*[at_util(0.3)] * 4),
     policy(profile=PROFILE), OLD, 2, "Underused"),
    ("fewer replicas would pass the utilization headroom: hold", 4, tier(*[at_util(0.6)] * 4),
     policy(profile=PROFILE, max_utilization=0.85, headroom=0.9), OLD, 4, "Hold"),
    ("fewer replicas would pass the KV headroom: hold", 3, tier(*[rep(kv=0.55)] * 3),
     policy(max_kv_cache_usage=0.85, headroom=0.9), OLD, 3, "Hold"),
    ("fewer replicas would fill the batches: hold", 2, tier(rep(running=150), rep(running=150)),
     policy(max_num_seqs=256), OLD, 2, "Hold"),
    ("a brief wait for admission, with room in batch and KV cache, does not block a scale-down", 4,
     tier(*[rep(running=15, waiting=0.2, kv=0.15, tps=0.5 * CAPACITY)] * 4), policy(profile=PROFILE), OLD,
     3, "Underused"),
    ("a standing queue with the KV cache far from full: the observed batch is the limit", 4,
     tier(*[rep(running=8, waiting=2, kv=0.1, tps=0.2 * CAPACITY)] * 4), policy(profile=PROFILE), OLD, 4, "Hold"),
    ("TTFT over the SLO at low load (prompt-bound) does not block a scale-down", 4,
     tier(*[at_util(0.1)] * 4, ttft=3.0), policy(profile=PROFILE, ttft_slo_seconds=2.0), OLD, 1, "Underused"),
    ("a silent replica counts as loaded as the busiest for a scale-down", 4,
     tier(at_util(0.1), at_util(0.5), at_util(0.1)), policy(profile=PROFILE, max_utilization=0.85, headroom=1.0),
     OLD, 2, "Underused"),
    ("minReplicas bounds a scale-down", 4, tier(*[at_util(0.05)] * 4), policy(profile=PROFILE, min_replicas=3), OLD,
     3, "Underused"),
    ("max step bounds a scale-down", 8, tier(*[at_util(0.01)] * 8), policy(profile=PROFILE, max_step=2), OLD,
     6, "Underused"),
    # stabilisation and cooldowns
    ("a higher recommendation inside the window holds a scale-down", 4, tier(*[at_util(0.1)] * 4),
     policy(profile=PROFILE), ScalerState(recommendations=((NOW - 200, 4),)), 4, "Stabilizing"),
    ("scale down only to the highest recommendation of the window", 6, tier(*[at_util(0.05)] * 6),
     policy(profile=PROFILE), ScalerState(recommendations=((NOW - 250, 3), (NOW - 400, 6))), 3, "Underused"),
    ("a fresh state (operator restart) waits one window before scaling down", 4, tier(*[at_util(0.1)] * 4),
     policy(profile=PROFILE), ScalerState(), 4, "Stabilizing"),
    ("scale-down cooldown", 4, tier(*[at_util(0.1)] * 4), policy(profile=PROFILE, scale_down_cooldown=120),
     dataclasses.replace(OLD, last_scale_down=NOW - 60), 4, "Cooldown"),
    ("scale-up is never held by the scale-down window", 2, tier(*[at_util(0.99)] * 2), policy(profile=PROFILE),
     ScalerState(recommendations=((NOW - 10, 1),), last_scale_down=NOW - 10), 3, "UtilizationHigh"),
    ("after a scale-down, utilization between the guardrail and guardrail/headroom does not turn it round", 3,
     tier(*[at_util(0.9)] * 3), policy(profile=PROFILE, max_utilization=0.85, headroom=0.9),
     dataclasses.replace(OLD, last_scale_down=NOW - 100), 3, "Hold"),
    ("after a scale-down, utilization over guardrail/headroom scales up", 3, tier(*[at_util(0.97)] * 3),
     policy(profile=PROFILE, max_utilization=0.85, headroom=0.9), dataclasses.replace(OLD, last_scale_down=NOW - 100),
     4, "UtilizationHigh"),
    ("a window after a scale-down, the utilization guardrail is back at maxUtilization", 3, tier(*[at_util(0.9)] * 3),
     policy(profile=PROFILE, max_utilization=0.85, headroom=0.9), dataclasses.replace(OLD, last_scale_down=NOW - 400),
     4, "UtilizationHigh"),
    ("after a scale-down, a queue over its guardrail still scales up", 2,
     tier(rep(running=10, waiting=10), rep(running=10, waiting=10)), policy(max_queue_per_replica=4),
     dataclasses.replace(OLD, last_scale_down=NOW - 100), 3, "QueueHigh"),
    # zero
    ("idle for scaleToZeroAfter with minReplicas 0: zero", 1, tier(rep(running=0, tps=0, kv=0.0)),
     policy(min_replicas=0), dataclasses.replace(OLD, idle_since=NOW - 900), 0, "Idle"),
    ("idle for less than scaleToZeroAfter: stays", 1, tier(rep(running=0, tps=0, kv=0.0)),
     policy(min_replicas=0), dataclasses.replace(OLD, idle_since=NOW - 600), 1, "Hold"),
    ("idle with minReplicas 1: never zero", 1, tier(rep(running=0, tps=0, kv=0.0)),
     policy(min_replicas=1), dataclasses.replace(OLD, idle_since=NOW - 9000), 1, "Hold"),
    ("idle but the router holds requests: not idle", 1, tier(rep(running=0, tps=0, kv=0.0), held=2),
     policy(min_replicas=0), dataclasses.replace(OLD, idle_since=NOW - 900), 1, "Hold"),
    ("at zero, requests held by the router wake the tier", 0, tier(held=3), policy(min_replicas=0), OLD, 1, "Wake"),
    ("at zero, no request waits: stays", 0, tier(), policy(min_replicas=0), OLD, 0, "Hold"),
    ("at zero, Prometheus down: stays", 0, None, policy(min_replicas=0), OLD, 0, "MetricsUnavailable"),
    ("at zero with maxReplicas 0: stays", 0, tier(held=3), policy(min_replicas=0, max_replicas=0), OLD, 0, "Hold"),
]


@pytest.mark.parametrize("current,signals,pol,state,expected,reason", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_policy_table(current, signals, pol, state, expected, reason):
    decision = desired_replicas(current, signals, pol, state, NOW)
    assert (decision.replicas, decision.reason) == (expected, reason), decision.message


def test_a_scale_records_its_time_and_the_recommendation_joins_the_window():
    up = desired_replicas(2, tier(*[at_util(0.99)] * 2), policy(profile=PROFILE), OLD, NOW)
    assert up.state.last_scale_up == NOW and (NOW, up.recommendation) in up.state.recommendations
    down = desired_replicas(4, tier(*[at_util(0.1)] * 4), policy(profile=PROFILE), OLD, NOW)
    assert down.state.last_scale_down == NOW and down.replicas < 4


def test_idleness_is_tracked_from_the_first_idle_decision_and_cleared_by_load():
    idle = tier(rep(running=0, tps=0, kv=0.0))
    first = desired_replicas(1, idle, policy(min_replicas=0), OLD, NOW)
    assert first.state.idle_since == NOW
    later = desired_replicas(1, idle, policy(min_replicas=0), first.state, NOW + 60)
    assert later.state.idle_since == NOW
    busy = desired_replicas(1, tier(rep()), policy(min_replicas=0), later.state, NOW + 120)
    assert busy.state.idle_since is None


def test_status_figures_follow_the_formula():
    signals = tier(rep(tps=1000, waiting=2, kv=0.2), rep(tps=1000, waiting=1, kv=0.4))
    d = desired_replicas(2, signals, policy(replica_hourly_usd=3.6), OLD, NOW)
    assert d.tokens_per_second == pytest.approx(2000)
    assert d.cost_per_million_tokens == pytest.approx(2 * 3.6 / (2000 * 3600) * 1e6)  # $1.00
    assert (d.queue_depth, d.kv_cache_usage) == (3, pytest.approx(0.3))


def test_a_falling_load_comes_down_step_by_step_without_reversals():
    """Load drops from 80% to 20% of four replicas: hold for the window, then one cooldown apart."""
    p, state, current, events = policy(profile=PROFILE, scale_down_cooldown=120, max_step=1), ScalerState(), 4, []
    for i in range(80):  # 20 minutes of 15 s decisions
        now = NOW + 15 * i
        u = 0.8 if i < 8 else 0.2
        total = u * 4 * CAPACITY
        d = desired_replicas(current, tier(*[rep(tps=total / current)] * current), p, state, now)
        state = d.state
        if d.replicas != current:
            events.append((now - NOW, current, d.replicas))
            current = d.replicas
    assert [e[2] for e in events] == [3, 2]  # 4 x 20% = 0.8 replicas' worth: 2 keep it within headroom
    assert events[0][0] >= 8 * 15 + 300 - 15  # the window after the last high recommendation
    assert events[1][0] - events[0][0] >= 120  # the cooldown


def test_policy_from_a_modeltier_spec_reads_every_scaling_field():
    spec = ModelTierSpec.model_validate({
        "model": {"source": "org/m", "parametersB": 8},
        "gpu": {"type": "nvidia-l4", "count": 2, "hourlyCostUSD": 0.5},
        "engine": {"maxNumSeqs": 64},
        "scaling": {"minReplicas": 0, "maxReplicas": 5, "targetCostPerMillionTokens": 0.3, "maxUtilization": 0.7,
                    "scaleToZeroAfter": "10m", "scaleDownStabilization": "2m", "scaleUpCooldown": "30s",
                    "scaleDownCooldown": "1m30s", "maxStep": 2},
    })
    p = ScalingPolicy.from_spec(spec)
    assert (p.min_replicas, p.max_replicas, p.max_step, p.max_num_seqs) == (0, 5, 2, 64)
    assert (p.scale_to_zero_after, p.scale_down_stabilization, p.scale_up_cooldown, p.scale_down_cooldown) == (
        600, 120, 30, 90)
    assert (p.target_cost_per_million_tokens, p.max_utilization, p.replica_hourly_usd) == (0.3, 0.7, 1.0)
    assert p.profile is not None


def test_replica_capacity_uses_the_observed_request_shape():
    observed = replica_capacity(PROFILE, prompt_tps=4000, generation_tps=100, requests_per_second=2)
    assert observed == pytest.approx(PROFILE.saturation_output_tps(2000, 50) * 2050 / 50)  # 2000 in, 50 out
    assert replica_capacity(PROFILE, 0, 0, 0) == pytest.approx(
        PROFILE.saturation_output_tps(REFERENCE_PROMPT_TOKENS, REFERENCE_OUTPUT_TOKENS)
        * (REFERENCE_PROMPT_TOKENS + REFERENCE_OUTPUT_TOKENS) / REFERENCE_OUTPUT_TOKENS)
    assert replica_capacity(None, 1, 1, 1) is None


def test_a_kv_cache_that_fills_early_caps_the_capacity_at_the_batch_it_holds():
    shape = (REFERENCE_PROMPT_TOKENS + REFERENCE_OUTPUT_TOKENS) / REFERENCE_OUTPUT_TOKENS
    assert replica_capacity(PROFILE, 0, 0, 0, kv_batch=100_000) == pytest.approx(CAPACITY)  # the model binds
    capped = replica_capacity(PROFILE, 0, 0, 0, kv_batch=5.5)
    assert capped == pytest.approx(PROFILE.steady_output_tps(5, REFERENCE_PROMPT_TOKENS, REFERENCE_OUTPUT_TOKENS) * shape)
    assert capped < 0.5 * CAPACITY


@pytest.mark.parametrize("kv, running, expected, reason", [
    # 4 running requests fill 80% of the KV cache: a full cache holds 5, whose throughput (31% of
    # the mean-request model's saturation) the replicas at 30% of that saturation nearly reach -> up
    (0.8, 4, 3, "UtilizationHigh"),
    # the same throughput, a full cache would hold 160 requests: the model's capacity stands -> down
    (0.25, 40, 1, "Underused"),
    # too little KV in use to say what a full cache holds: the model's capacity stands -> down
    (0.1, 4, 1, "Underused"),
])
def test_utilization_is_measured_against_the_batch_the_kv_cache_holds(kv, running, expected, reason):
    replicas = tier(*[dataclasses.replace(at_util(0.3), kv_cache_usage=kv, running=running)] * 2)
    decision = desired_replicas(2, replicas, policy(profile=PROFILE, scale_down_cooldown=0), OLD, NOW)
    assert (decision.replicas, decision.reason) == (expected, reason)
