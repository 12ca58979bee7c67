"""The GPU memory estimate that decides InsufficientGPUMemory."""

import pytest

from tokenfleet.gpus import estimate_memory_fit, kv_bytes_per_token


@pytest.mark.parametrize(
    "params,weights,kv,gpu_gib,count,fits",
    [
        (8, "none", "auto", 24, 1, True),      # Llama 8B BF16 on an L4: 15 GiB of weights
        (8, "none", "auto", 16, 1, False),     # ... but not on a T4
        (70, "none", "auto", 80, 1, False),    # 70B BF16 needs ~130 GiB
        (70, "none", "auto", 80, 2, True),     # ... which two H100s have
        (70, "awq", "auto", 80, 1, True),      # 4-bit: ~35 GiB
        (70, "awq", "auto", 24, 1, False),
        (8, "fp8", "fp8", 16, 1, True),        # FP8 halves weights and KV
        (1.24, "int4", "auto", 16, 1, True),
    ],
)
def test_memory_fit_table(params, weights, kv, gpu_gib, count, fits):
    fit = estimate_memory_fit(parameters_b=params, weights=weights, kv_cache=kv, max_model_len=8192,
                              gpu_memory_gib=gpu_gib, gpu_count=count, gpu_memory_utilization=0.9)
    assert fit.fits is fits


def test_a_longer_context_can_tip_a_model_over():
    common = dict(parameters_b=8, weights="none", kv_cache="auto", gpu_memory_gib=24, gpu_count=1,
                  gpu_memory_utilization=0.9)
    assert estimate_memory_fit(max_model_len=8192, **common).fits
    assert not estimate_memory_fit(max_model_len=131072, **common).fits


def test_kv_estimate_is_close_to_llama_shapes():
    assert kv_bytes_per_token(1) / 1024 == pytest.approx(32, rel=0.05)
    assert kv_bytes_per_token(8) / 1024 == pytest.approx(128, rel=0.1)
    assert kv_bytes_per_token(70) / 1024 == pytest.approx(320, rel=0.3)
    assert kv_bytes_per_token(8, "fp8") == kv_bytes_per_token(8) / 2


def test_message_names_the_numbers():
    fit = estimate_memory_fit(parameters_b=70, weights="none", kv_cache="auto", max_model_len=8192,
                              gpu_memory_gib=80, gpu_count=1, gpu_memory_utilization=0.9)
    text = fit.message("nvidia-h100", 1)
    assert "does not fit on 1 x nvidia-h100" in text and "weights 130.4" in text and "usable 72.0 GiB" in text
