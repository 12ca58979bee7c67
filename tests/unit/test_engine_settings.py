"""Emulator settings: from the command line, from a ModelTierSpec, and back to arguments."""

from __future__ import annotations

import argparse

import pytest

from tokenfleet.api.v1alpha1 import ModelTierSpec
from tokenfleet.commands import emulate_engine
from tokenfleet.engine.settings import EngineSettings, settings_for_tier, tier_args


def parse(argv: list[str]) -> EngineSettings:
    parser = argparse.ArgumentParser()
    emulate_engine.configure(parser)
    return emulate_engine.settings_from_args(parser.parse_args(argv))


SPEC = ModelTierSpec.model_validate({
    "model": {"source": "hf://meta-llama/Llama-3.1-8B-Instruct", "servedName": "llama-8b", "parametersB": 8,
              "maxModelLen": 4096},
    "quantization": {"weights": "fp8", "kvCache": "fp8"},
    "gpu": {"type": "nvidia-h100", "count": 2, "memoryGiB": 80},
    "engine": {"maxNumSeqs": 128, "maxNumBatchedTokens": 4096, "gpuMemoryUtilization": 0.85, "port": 8001,
               "prefixCaching": False},
})


def test_a_modeltier_maps_onto_the_emulator_settings():
    settings = settings_for_tier("tier-a", SPEC, time_scale=5.0)
    assert settings.models == ("llama-8b",) and settings.source == "meta-llama/Llama-3.1-8B-Instruct"
    assert (settings.parameters_b, settings.weights, settings.kv_cache) == (8, "fp8", "fp8")
    assert (settings.gpu_type, settings.gpu_count, settings.gpu_memory_gib) == ("nvidia-h100", 2, 80)
    assert (settings.max_num_seqs, settings.max_num_batched_tokens, settings.max_model_len) == (128, 4096, 4096)
    assert settings.gpu_memory_utilization == 0.85 and settings.port == 8001 and settings.time_scale == 5.0
    assert settings.prefix_caching is False


def test_a_tier_without_served_name_is_served_under_the_tier_name():
    spec = SPEC.model_copy(update={"model": SPEC.model.model_copy(update={"served_name": None})})
    assert settings_for_tier("tier-a", spec).models == ("tier-a",)


def test_tier_arguments_give_back_the_same_settings_through_the_cli():
    expected = settings_for_tier("tier-a", SPEC, port=9000, instant=True, legacy_metric_names=True)
    assert parse(tier_args("tier-a", SPEC, port=9000, instant=True, legacy_metric_names=True)) == expected


def test_unset_batch_limits_follow_vllm_defaults_for_the_gpu():
    assert parse(["--gpu-type", "nvidia-h100"]).batch_limits() == (1024, 8192)
    assert parse(["--gpu-type", "nvidia-l4"]).batch_limits() == (256, 2048)
    assert parse(["--gpu-type", "nvidia-l4", "--max-num-seqs", "8"]).batch_limits() == (8, 2048)


def test_capability_defaults_to_the_model_size():
    assert parse(["--parameters-b", "70", "--gpu-type", "nvidia-h100", "--gpu-count", "2"]).resolved_capability() \
        == pytest.approx(0.903, abs=0.001)
    assert parse(["--capability", "0.2"]).resolved_capability() == 0.2


@pytest.mark.parametrize(("argv", "problem"), [
    (["--time-scale", "0"], "--time-scale"),
    (["--fail-rate", "1.5"], "--fail-rate"),
    (["--capability", "2"], "--capability"),
    (["--parameters-b", "70", "--gpu-type", "nvidia-l4"], "does not fit"),
    (["--kv-capacity-tokens", "1000", "--max-model-len", "2048"], "cannot hold"),
])
def test_unusable_settings_are_reported(argv, problem):
    assert any(problem in p for p in parse(argv).validate())


def test_the_defaults_are_usable():
    assert parse([]).validate() == []
