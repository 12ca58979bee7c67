"""The engine performance model against published vLLM figures (../shared/CALIBRATION.md).

Sources of the rows:
- H100 80GB, vLLM v0.30.0, Qwen3-8B, 128 in / 128 out (and 128 / 1024), BF16 and FP8:
  github.com/tgarg01/silybench-data, derived/csv/perf_points.csv (2026-09-24).
- L4 24GB (vLLM v0.8.5) and A100 40GB (vLLM v0.20.1), Qwen2.5-7B, ~200 in / 128 out, FP16 and
  AWQ: github.com/ree2raz/inference-bench, results/summary.csv and results/v2_a100_vllm_fp16.jsonl.
- Single-request ITL of Llama-3.1-8B on H100 = 6.44 ms + 4.37e-5 ms x context: vLLM blog,
  2026-04-22 (FP8 KV cache post).
- Batch of 8 x 32 in / 128 out: vLLM CI dashboard (buildkite.com/vllm/performance-benchmark).

Tolerances: 15% on every throughput row, 17% on the AWQ rows (A100 -16% and L4 +16% at
concurrency 64: a linear step model cannot fit both GPUs), 10% on decode steps up to 256
sequences, 15% on the CI batch latencies.
"""

from __future__ import annotations

import pytest

from tokenfleet.engine.simulator import BatchSimulator
from tokenfleet.perf import (
    build_profile,
    cost_per_million_tokens,
    default_batch_limits,
    profile_for_tier,
    token_prices,
)

# (gpu, weights, billions, prompt, output, {concurrency: published output tok/s}, tolerance)
THROUGHPUT_ROWS = [
    ("nvidia-h100", "none", 8, 128, 128, {1: 145, 16: 2156, 64: 6958, 128: 11194, 256: 13093, 512: 14540}, 0.15),
    ("nvidia-h100", "none", 8, 128, 1024, {64: 6597, 256: 13600}, 0.15),
    ("nvidia-h100", "fp8", 8, 128, 128, {1: 213, 16: 3088, 64: 9170, 128: 13377, 256: 15704, 512: 16542}, 0.15),
    ("nvidia-l4", "none", 7, 200, 128, {1: 17, 4: 66, 16: 255, 32: 461, 64: 832}, 0.15),
    ("nvidia-a100-40gb", "none", 7, 200, 128, {1: 80, 16: 1096, 64: 3114}, 0.15),
    ("nvidia-l4", "awq", 7, 200, 128, {1: 43, 64: 976}, 0.17),
    ("nvidia-a100-40gb", "awq", 7, 200, 128, {1: 177, 16: 2285, 64: 4895}, 0.17),
]
CASES = [
    pytest.param(gpu, weights, size, prompt, output, concurrency, published, tol,
                 id=f"{gpu}-{weights}-{prompt}/{output}-c{concurrency}")
    for gpu, weights, size, prompt, output, table, tol in THROUGHPUT_ROWS
    for concurrency, published in table.items()
]


@pytest.mark.parametrize(("gpu", "weights", "size", "prompt", "output", "concurrency", "published", "tol"), CASES)
def test_steady_output_throughput_matches_published_vllm_figures(
        gpu, weights, size, prompt, output, concurrency, published, tol):
    profile = build_profile(parameters_b=size, weights=weights, gpu_type=gpu)
    assert profile.steady_output_tps(concurrency, prompt, output) == pytest.approx(published, rel=tol)


@pytest.mark.parametrize(("weights", "itl_by_concurrency"), [
    ("none", {1: 6.83, 16: 7.14, 64: 8.15, 128: 9.34, 256: 12.83}),
    ("fp8", {1: 4.62, 16: 4.86, 64: 5.92, 128: 7.55, 256: 10.87}),
])
def test_decode_steps_match_the_published_inter_token_latency(weights, itl_by_concurrency):
    profile = build_profile(parameters_b=8, weights=weights, gpu_type="nvidia-h100")
    for concurrency, itl_ms in itl_by_concurrency.items():
        mean_context = 128 + 64  # halfway through a 128-token answer to a 128-token prompt
        step = profile.step_ms(concurrency, concurrency * mean_context)
        assert step == pytest.approx(itl_ms, rel=0.10), concurrency


def test_single_request_itl_grows_with_context_like_the_vllm_blog():
    profile = build_profile(parameters_b=8, gpu_type="nvidia-h100")
    assert profile.kv_ms_per_token == pytest.approx(4.37e-5, rel=0.05)
    assert profile.step_ms(1, 0) == pytest.approx(6.44, rel=0.10)
    assert profile.step_ms(1, 100_000) - profile.step_ms(1, 0) == pytest.approx(4.37, rel=0.05)


@pytest.mark.parametrize(("size", "gpu", "count", "published_ms"), [
    (8, "nvidia-h100", 1, 998),
    (8, "nvidia-a100-80gb", 1, 1585),
    (70, "nvidia-h100", 4, 2445),
])
def test_a_batch_of_eight_takes_as_long_as_on_the_vllm_ci_dashboard(size, gpu, count, published_ms):
    profile = build_profile(parameters_b=size, gpu_type=gpu, gpu_count=count)
    sim = BatchSimulator(profile, max_num_batched_tokens=8192)
    for i in range(8):
        sim.add(i, 32, 128)
    total = 0.0
    while not sim.idle:
        total += sim.step().duration_ms
    assert total == pytest.approx(published_ms, rel=0.15)


def test_fp8_is_faster_than_bf16_by_about_the_published_margin():
    bf16 = build_profile(parameters_b=8, gpu_type="nvidia-h100").steady_output_tps(64, 128, 128)
    fp8 = build_profile(parameters_b=8, weights="fp8", gpu_type="nvidia-h100").steady_output_tps(64, 128, 128)
    assert fp8 / bf16 == pytest.approx(9170 / 6958, rel=0.05)  # +32% published at concurrency 64


@pytest.mark.parametrize(("gpu", "memory", "limits"), [
    ("nvidia-h100", None, (1024, 8192)),
    ("nvidia-a100-80gb", None, (256, 2048)),
    ("nvidia-l4", None, (256, 2048)),
    ("acme-x1", 96, (1024, 8192)),
])
def test_batch_defaults_follow_vllm_by_gpu(gpu, memory, limits):
    assert default_batch_limits(gpu, memory) == limits
    assert build_profile(parameters_b=8, gpu_type=gpu, memory_gib=memory).max_num_seqs == limits[0]


def test_throughput_saturates_at_max_num_seqs_and_at_the_kv_cache():
    profile = build_profile(parameters_b=8, gpu_type="nvidia-l4", max_num_seqs=64)
    assert profile.steady_output_tps(128, 200, 128) == profile.steady_output_tps(64, 200, 128)
    long_context = profile.saturation_output_tps(6000, 500)  # a few such sequences fill the L4's KV cache
    assert long_context < profile.steady_output_tps(64, 6000, 500)


def test_cost_per_million_tokens_follows_the_design_formula():
    assert cost_per_million_tokens(2, 3.99, 13_000) == pytest.approx(2 * 3.99 / (13_000 * 3600) * 1e6)
    assert cost_per_million_tokens(1, 3.99, 0) is None


def test_token_prices_make_output_dearer_than_input_and_follow_the_gpu_price():
    cheap = build_profile(parameters_b=8, gpu_type="nvidia-h100", hourly_usd_per_gpu=2.0)
    dear = build_profile(parameters_b=8, gpu_type="nvidia-h100", hourly_usd_per_gpu=4.0)
    cheap_in, cheap_out = token_prices(cheap)
    dear_in, dear_out = token_prices(dear)
    assert 0 < cheap_in < cheap_out
    assert dear_out == pytest.approx(2 * cheap_out) and dear_in == pytest.approx(2 * cheap_in)


def test_a_modeltier_spec_gives_the_same_profile_as_its_fields():
    from tokenfleet.api.v1alpha1 import ModelTierSpec

    spec = ModelTierSpec.model_validate({
        "model": {"source": "hf://meta-llama/Llama-3.1-8B-Instruct", "parametersB": 8},
        "quantization": {"weights": "fp8"}, "gpu": {"type": "nvidia-h100", "count": 1},
    })
    assert profile_for_tier(spec) == build_profile(parameters_b=8, weights="fp8", gpu_type="nvidia-h100")
