"""The trace replay library (tokenfleet.replay, tokenfleet.scalers): trace parsing, PromQL-like signals, billing, baselines."""

from __future__ import annotations

import random

import pytest

from tokenfleet.autoscaling import ReplicaSignals, ScalingPolicy, TierSignals
from tokenfleet.perf import build_profile
from tokenfleet.replay import (
    batch_caps,
    packed_tokens_per_second,
    FleetModel,
    ReplayResult,
    Request,
    floor_cost_per_million_tokens,
    histogram_quantile,
    load_trace,
    replay,
    saturation_tokens_per_second,
)
from tokenfleet.scalers import ForesightScaler, PolicyScaler, QueueThresholdScaler, StaticScaler

PROFILE = build_profile(parameters_b=8, weights="fp8", gpu_type="nvidia-h100")


def poisson(rate: float, seconds: float, seed: int = 1, prompt: int = 500, output: int = 100) -> list[Request]:
    rng, t, out = random.Random(seed), 0.0, []
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            return out
        out.append(Request(t, prompt, output))


def test_a_trace_csv_is_read_in_time_order_from_zero(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    "2023-11-16 18:15:50.9951690,396,109\n"
                    "2023-11-16 18:15:46.6805900,374,44\n"
                    "2023-11-16 18:15:51.2224670,0,55\n")
    requests = load_trace(path)
    assert [r.arrival for r in requests] == pytest.approx([0.0, 4.314579, 4.541877])
    assert [(r.prompt_tokens, r.output_tokens) for r in requests] == [(374, 44), (396, 109), (1, 55)]
    assert len(load_trace(path, limit=2)) == 2
    (tmp_path / "empty.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n")
    with pytest.raises(ValueError, match="no requests"):
        load_trace(tmp_path / "empty.csv")


@pytest.mark.parametrize("q,counts,expected", [
    (0.5, [0, 10, 20, 20], 2.0),  # rank 10 ends bucket (1, 2]
    (0.75, [0, 10, 20, 20], 3.0),  # halfway through (2, 4]
    (0.25, [10, 10, 20, 20], 0.5),  # the first bucket starts at 0
    (0.95, [0, 10, 10, 20], 4.0),  # in +Inf: the last finite bound, as Prometheus answers
    (0.95, [0, 0, 0, 0], None),  # no observations
])
def test_histogram_quantile_follows_prometheus(q, counts, expected):
    assert histogram_quantile(q, (1.0, 2.0, 4.0), counts) == expected


def test_reversals_count_direction_changes_inside_the_window():
    result = ReplayResult("x", 0, 0, 0, 0, [], 2, [(0, 2, 3), (100, 3, 2), (500, 2, 3), (520, 3, 4)], 0)
    assert result.reversals(300) == 1  # up then down after 100 s; the next change comes 400 s later
    assert result.reversals(600) == 2


def test_a_static_fleet_serves_every_request_and_is_billed_for_its_replicas():
    requests = poisson(rate=5, seconds=60)
    result = replay(requests, FleetModel(PROFILE, initial_replicas=2), StaticScaler(2))
    assert result.requests == len(requests) and result.scale_events == []
    assert result.tokens == sum(r.prompt_tokens + r.output_tokens for r in requests)
    assert result.cost_usd == pytest.approx(2 * result.seconds * PROFILE.hourly_usd / 3600)
    assert result.mean_replicas == pytest.approx(2)
    assert all(0 < t < 1 for t in result.ttft) and result.slo_attainment == 1.0


def test_a_new_replica_costs_from_the_request_and_serves_after_its_start_up():
    class OneMore:
        name = "one-more"

        def decide(self, now, current, signals):
            return 2

    requests = poisson(rate=2, seconds=120)
    model = FleetModel(PROFILE, initial_replicas=1, startup_seconds=60, decision_interval=15)
    result = replay(requests, model, OneMore())
    assert result.scale_events == [(15.0, 1, 2)]
    assert result.replica_seconds == pytest.approx(result.seconds + (result.seconds - 15))


def test_requests_wait_for_a_tier_that_wakes_from_zero():
    requests = [Request(1.0, 200, 20), Request(2.0, 200, 20)]
    model = FleetModel(PROFILE, initial_replicas=0, startup_seconds=30, decision_interval=5)
    scaler = PolicyScaler(ScalingPolicy(min_replicas=0, max_replicas=2, replica_hourly_usd=1.0))
    result = replay(requests, model, scaler)
    assert result.scale_events[0] == (5.0, 0, 1)
    assert min(result.ttft) > 30 and scaler.reasons["Wake"] == 1


def test_the_policy_scales_a_tier_up_under_a_burst_and_the_replay_counts_slo():
    requests = poisson(rate=25, seconds=120, prompt=1500, output=200)
    model = FleetModel(PROFILE, initial_replicas=1, startup_seconds=20, ttft_slo_seconds=2.0)
    policy = ScalingPolicy(min_replicas=1, max_replicas=8, replica_hourly_usd=PROFILE.hourly_usd, profile=PROFILE)
    result = replay(requests, model, PolicyScaler(policy))
    assert result.scale_events and result.scale_events[0][2] > 1
    assert 0 < result.slo_attainment <= 1


def test_the_queue_baseline_follows_hpa_average_value_semantics():
    def signals(waiting_per_replica: float, n: int) -> TierSignals:
        return TierSignals(tuple(ReplicaSignals(f"r{i}", running=10, waiting=waiting_per_replica) for i in range(n)))

    keda = QueueThresholdScaler(threshold=5, min_replicas=1, max_replicas=50, stabilization=300)
    assert keda.decide(0, 2, signals(5.2, 2)) == 2  # within the 10% tolerance
    assert keda.decide(15, 2, signals(20, 2)) == 6  # ceil(40 / 5) = 8, at most max(2 x 2, 2 + 4) per decision
    assert keda.decide(30, 6, signals(0, 6)) == 6  # no waiting: desired 0 -> min, held by the window
    assert keda.decide(400, 6, signals(0, 6)) == 1  # the window has passed


def test_saturation_throughput_of_identical_requests_matches_the_closed_form():
    requests = [Request(i * 0.01, 1000, 200) for i in range(1000)]
    model = FleetModel(PROFILE, max_num_batched_tokens=8192)
    closed = PROFILE.saturation_output_tps(1000, 200) * 1200 / 200
    measured = saturation_tokens_per_second(requests, model)
    assert measured == pytest.approx(closed, rel=0.05)
    assert floor_cost_per_million_tokens(requests, model) == pytest.approx(PROFILE.hourly_usd / (measured * 3600) * 1e6)


def test_no_replayed_fleet_is_cheaper_than_the_floor():
    """A replica flooded with the trace's requests is as packed as it gets: it costs at least the floor."""
    rng = random.Random(3)
    requests = sorted((Request(rng.uniform(0, 60), rng.randint(50, 3000), rng.randint(10, 600))
                       for _ in range(1500)), key=lambda r: r.arrival)
    model = FleetModel(PROFILE, initial_replicas=1)
    flooded = replay(requests, model, StaticScaler(1))
    floor = floor_cost_per_million_tokens(requests, model)
    assert floor <= flooded.cost_per_million_tokens < 1.2 * floor


def test_the_floor_charges_no_preemption_a_smaller_batch_would_avoid():
    """16-bit 8B weights leave an L4 little KV cache: vLLM's 256-request batch thrashes on long prompts."""
    starved = build_profile(parameters_b=8, weights="none", gpu_type="nvidia-l4")
    rng = random.Random(5)
    requests = sorted((Request(rng.uniform(0, 600), rng.randint(200, 4000), rng.randint(20, 400))
                       for _ in range(600)), key=lambda r: r.arrival)
    model = FleetModel(starved)
    thrashing = packed_tokens_per_second(requests, model)  # max_num_seqs 256: preempts and recomputes
    smaller = max(packed_tokens_per_second(requests, model, cap) for cap in (16, 24, 32))
    assert smaller > 1.05 * thrashing
    assert saturation_tokens_per_second(requests, model) >= smaller


def test_batch_caps_end_at_max_num_seqs():
    assert batch_caps(256) == [8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256]
    assert batch_caps(100) == [8, 12, 16, 24, 32, 48, 64, 96, 100]
    assert batch_caps(4) == [4]


def test_foresight_asks_for_replicas_a_start_up_ahead_and_releases_them_at_once():
    oracle = ForesightScaler(needs=[2, 2, 5, 1], lead=90.0)
    # minute 2 needs 5: asked for from 30 s (90 s ahead) until it ends; minute 3 needs only 1
    assert [oracle.decide(t, 0, TierSignals()) for t in (0, 20, 30, 119, 120, 179, 180, 600)] == [2, 2, 5, 5, 5, 5, 1, 1]
