"""``tokenfleet plan``'s numbers against cases computed by hand: a 3-row trace, one tier, round prices."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from tokenfleet.engine.simulator import BatchSimulator
from tokenfleet.perf import EngineProfile, profile_for_tier, token_prices
from tokenfleet.plan import Assumptions, PlanError, build_plan, fleet_from_documents
from tokenfleet.plan.model import (assign_tiers, break_even, default_shares, serial_replicas, serial_seconds,
                                   split_cache, static_replicas, trace_period)
from tokenfleet.plan.stages import floor_monthly, unquantized
from tokenfleet.replay import Request

MONTH_SECONDS = 730 * 3600  # 2,628,000

SOLO = """
apiVersion: tokenfleet.io/v1alpha1
kind: ModelTier
metadata: {name: solo}
spec:
  model: {source: hf://meta-llama/Llama-3.1-8B-Instruct, parametersB: 8, maxModelLen: 4096}
  gpu: {type: nvidia-l4, count: 1, hourlyCostUSD: 1.0}
  scaling: {minReplicas: 1, maxReplicas: 1}
---
apiVersion: tokenfleet.io/v1alpha1
kind: InferenceFleet
metadata: {name: f}
spec: {tiers: [solo]}
"""

# Three requests, 30 s apart: they stand for 90 s of traffic (each owns 30 s).
THREE = [Request(0.0, 1000, 100), Request(30.0, 1000, 100), Request(60.0, 1000, 100)]
MONTH_FACTOR = MONTH_SECONDS / 90.0  # 29,200 copies of the trace in a month
ROUTER = 0.5 * 0.05 * 730  # 500m CPU at $0.05 per vCPU-hour: 18.25
CACHE = 1.0 * 0.05 * 730  # one CPU: 36.5

# A replica whose every step costs 10 ms whatever it holds: 10 sequences -> 1,000 output tokens/s.
FLAT = EngineProfile(a_ms=10.0, b_ms=0.0, kv_ms_per_token=0.0, prefill_ms_per_token=0.0, max_num_seqs=10,
                     kv_capacity_tokens=1e9, hourly_usd=1.0)


def solo_fleet():
    return fleet_from_documents(list(yaml.safe_load_all(SOLO)))


def test_a_trace_stands_for_its_span_plus_one_gap():
    assert trace_period(THREE) == 90.0


@pytest.mark.parametrize("trace", [[Request(5.0, 1, 1)], [Request(5.0, 1, 1), Request(5.0, 2, 2)]])
def test_a_trace_without_a_rate_is_refused_instead_of_counted_as_one_second(trace):
    with pytest.raises(PlanError, match="two different times"):
        build_plan(solo_fleet(), trace)


def test_one_tier_at_one_dollar_an_hour_costs_730_dollars_a_month_in_every_stage():
    plan = build_plan(solo_fleet(), THREE, Assumptions())
    assert [s.name for s in plan.stages] == ["baseline", "batching", "quantization", "autoscaling", "cascade"]
    assert plan.period_seconds == 90.0
    assert plan.monthly_requests == pytest.approx(3 * MONTH_FACTOR)  # 87,600
    assert plan.monthly_tokens == pytest.approx(3300 * MONTH_FACTOR)  # 96,360,000
    for stage in plan.stages[:4]:
        assert stage.monthly_usd == pytest.approx(730.0), stage.name
        assert plan.cost_per_million_tokens(stage) == pytest.approx(730.0 / 96.36)  # $7.5758
    cascade = plan.stages[-1]
    assert cascade.overhead == (("router", pytest.approx(ROUTER)),)
    assert cascade.monthly_usd == pytest.approx(730.0 + ROUTER)  # 748.25


def test_the_bill_splits_into_token_costs_at_saturation_prices_and_the_rest():
    plan = build_plan(solo_fleet(), THREE, Assumptions())
    tier = plan.stages[3].tiers[0]
    p_in, p_out = token_prices(profile_for_tier(solo_fleet().tiers[0][1]), 1000, 100)
    assert tier.c_input == pytest.approx(3000 * MONTH_FACTOR * p_in / 1e6)
    assert tier.c_output == pytest.approx(300 * MONTH_FACTOR * p_out / 1e6)
    assert tier.c_input + tier.c_output + tier.c_infra == pytest.approx(730.0)
    assert tier.c_infra > 0  # three requests in 90 s leave the GPU mostly idle


def test_a_cache_hit_rate_adds_the_cache_stage_with_the_cache_service_cpu():
    plan = build_plan(solo_fleet(), THREE, Assumptions(cache_hit_rate=0.5))
    cache = plan.stages[-1]
    assert cache.name == "cache"
    assert dict(cache.overhead) == {"router": pytest.approx(ROUTER), "cache": pytest.approx(CACHE)}
    assert cache.monthly_usd == pytest.approx(730.0 + ROUTER + CACHE)  # 784.75: one replica is the floor
    assert cache.tiers[0].requests == len(split_cache(THREE, 0.5, 0))


def test_static_fleets_are_sized_for_the_busiest_window():
    # 600 requests of 900 + 100 tokens in one minute: 10,000 tokens/s; a replica saturates at
    # 1,000 output tokens/s = 10,000 tokens/s, 8,500 within maxUtilization 0.85 -> 2 replicas.
    busy = [Request(i * 0.1, 900, 100) for i in range(600)]
    quiet = [Request(60 + i, 900, 100) for i in range(60)]
    assert static_replicas(busy + quiet, FLAT, 0.85) == 2
    assert static_replicas(busy[:500] + quiet, FLAT, 0.85) == 1  # 8,333 tokens/s


def test_without_batching_a_request_takes_its_steps_one_after_the_other():
    # One prefill step (900 tokens fit the 2,048 budget) then 99 decode steps, 10 ms each.
    assert serial_seconds(FLAT, 900, 100, 2048) == pytest.approx(1.0)
    assert serial_seconds(FLAT, 5000, 1, 2048) == pytest.approx(0.03)  # three chunks, no decode
    # 60 such requests in one minute keep a replica busy 60 s: 60 / (60 x 0.85) -> 2 replicas.
    assert serial_replicas([Request(i, 900, 100) for i in range(60)], FLAT, 0.85, 2048) == 2


@pytest.mark.parametrize("prompt, output", [(900, 100), (3000, 17), (1, 1), (2048, 300)])
def test_serial_service_time_equals_the_simulator_running_one_request(prompt, output):
    profile = replace(profile_for_tier(solo_fleet().tiers[0][1]), max_num_seqs=1)
    sim = BatchSimulator(profile, max_num_batched_tokens=2048)
    sim.add("r", prompt, output)
    total = 0.0
    while (step := sim.step()) is not None:
        total += step.duration_ms
    assert serial_seconds(profile, prompt, output, 2048) == pytest.approx(total / 1000.0, rel=1e-9)


@pytest.mark.parametrize("tiers, small, expected", [
    (1, 0.6, (1.0,)),
    (2, 0.7, (0.7, 0.3)),
    (3, 0.6, (0.6, 0.24, 0.16)),
])
def test_each_tier_answers_its_share_of_what_reaches_it(tiers, small, expected):
    assert default_shares(tiers, small) == pytest.approx(expected)


def test_tier_and_cache_draws_follow_their_shares_and_the_seed():
    many = [Request(float(i), 10, 10) for i in range(20000)]
    answered = assign_tiers(many, (0.6, 0.3, 0.1), seed=3)
    assert [answered.count(i) / len(many) for i in range(3)] == pytest.approx([0.6, 0.3, 0.1], abs=0.015)
    assert answered == assign_tiers(many, (0.6, 0.3, 0.1), seed=3)
    assert len(split_cache(many, 0.25, 0)) / len(many) == pytest.approx(0.75, abs=0.015)


def test_every_cheaper_tier_serves_the_requests_that_escalate_past_it():
    two = SOLO.replace("tiers: [solo]", "tiers: [solo, big]") + """---
apiVersion: tokenfleet.io/v1alpha1
kind: ModelTier
metadata: {name: big}
spec:
  model: {source: hf://x/y, parametersB: 8, maxModelLen: 4096}
  gpu: {type: nvidia-l4, count: 1, hourlyCostUSD: 2.0}
  scaling: {minReplicas: 1, maxReplicas: 1}
"""
    fleet = fleet_from_documents(list(yaml.safe_load_all(two)))
    many = [Request(float(i), 100, 10) for i in range(400)]
    plan = build_plan(fleet, many, Assumptions(tier_shares=(0.5, 0.5)))
    small, big = plan.stages[-1].tiers
    assert small.requests == 400
    assert big.requests == assign_tiers(many, (0.5, 0.5), 0).count(1)
    assert plan.stages[-1].monthly_usd == pytest.approx(730.0 * (1.0 + 2.0) + ROUTER)
    assert plan.stages[0].tiers[0].tier == "big"  # the baseline is the largest (last) tier


def test_break_even_with_the_api():
    fleet = solo_fleet()
    plan = build_plan(fleet, THREE, Assumptions())
    floor = floor_monthly(fleet, plan)
    assert floor == pytest.approx(730.0 + ROUTER)  # minReplicas 1 at $1/h, and the router
    cheap = break_even(plan, floor, 1.0, 2.0)
    assert cheap.api_monthly_usd == pytest.approx((3000 * 1.0 + 300 * 2.0) / 1e6 * MONTH_FACTOR)  # 105.12
    assert cheap.break_even_requests_per_day is None  # the API is cheaper per request than this idle GPU
    dear = break_even(plan, floor, 10.0, 20.0)
    per_day = 3 * MONTH_FACTOR / (730 / 24)  # 2,880 requests a day
    assert dear.requests_per_day == pytest.approx(per_day)
    assert dear.break_even_requests_per_day == pytest.approx(748.25 / 1051.2 * per_day)  # 2,049.9
    assert dear.self_cost(dear.break_even_requests_per_day) == pytest.approx(
        dear.api_cost(dear.break_even_requests_per_day))


def test_unquantized_baselines_take_the_gpus_their_weights_need():
    spec = fleet_from_documents(list(yaml.safe_load_all(SOLO))).tiers[0][1]
    assert unquantized(spec).gpu.count == 1
    big = spec.model_validate({**spec.model_dump(by_alias=True, exclude_none=True),
                               "model": {"source": "hf://x", "parametersB": 70, "maxModelLen": 4096},
                               "quantization": {"weights": "awq"}, "gpu": {"type": "nvidia-h100", "count": 1}})
    plain = unquantized(big)
    assert plain.quantization.weights == "none" and plain.gpu.count == 2  # 140 GB of 16-bit weights


@pytest.mark.parametrize("assumptions, message", [
    (Assumptions(tier_shares=(0.5, 0.5)), "has 2 values"),
    (Assumptions(tier_shares=(0.7,)), None),
    (Assumptions(cache_hit_rate=1.0), "cache-hit-rate"),
])
def test_bad_assumptions_are_refused_with_the_flag_named(assumptions, message):
    if message is None:
        with pytest.raises(PlanError, match="sum to 1"):
            build_plan(solo_fleet(), THREE, assumptions)
        return
    with pytest.raises(PlanError, match=message):
        build_plan(solo_fleet(), THREE, assumptions)


def test_a_fleet_naming_a_missing_tier_is_refused():
    docs = [d for d in yaml.safe_load_all(SOLO) if d["kind"] == "InferenceFleet"]
    with pytest.raises(PlanError, match="ModelTier 'solo' is not in the files"):
        fleet_from_documents(docs)


BIG = """
apiVersion: tokenfleet.io/v1alpha1
kind: ModelTier
metadata: {name: big}
spec:
  model: {source: hf://meta-llama/Llama-3.1-70B-Instruct, parametersB: 70, maxModelLen: 4096}
  quantization: {weights: awq}
  gpu: {type: nvidia-h100, count: 1, hourlyCostUSD: 2.0}
  scaling: {minReplicas: 1, maxReplicas: 1}
---
apiVersion: tokenfleet.io/v1alpha1
kind: InferenceFleet
metadata: {name: f}
spec: {tiers: [big]}
"""


def test_quantization_saves_the_gpus_the_16_bit_weights_needed():
    # One replica throughout (three light requests). At 16 bits 70B needs 2 x H100 at $2/h:
    # 2 x 2 x 730 = $2,920 a month; with AWQ weights one H100: $1,460, half of it saved.
    plan = build_plan(fleet_from_documents(list(yaml.safe_load_all(BIG))), THREE, Assumptions())
    monthly = {s.name: s.monthly_usd for s in plan.stages}
    assert monthly["baseline"] == pytest.approx(2920.0) and monthly["batching"] == pytest.approx(2920.0)
    assert monthly["quantization"] == pytest.approx(1460.0) and monthly["autoscaling"] == pytest.approx(1460.0)
    assert monthly["cascade"] == pytest.approx(1460.0 + ROUTER)
    assert plan.cost_per_million_tokens(plan.stages[2]) == pytest.approx(1460.0 / 96.36)
