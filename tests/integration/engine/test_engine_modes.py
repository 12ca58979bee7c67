"""Emulator modes for tests and benchmarks: batching limits, startup delay, failures, legacy names, instant."""

from __future__ import annotations

import subprocess
import threading
import time

import httpx
import openai
import pytest

from tests.support.engines import emulator, metric_values
from tests.support.procs import tokenfleet_cmd

pytestmark = pytest.mark.timeout(60)
LABEL = '{model_name="m"}'


def chat(base: str, content: str, client: openai.OpenAI | None = None, **kwargs):
    client = client or openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": content}], **kwargs)


def test_requests_beyond_max_num_seqs_wait_and_the_metrics_show_it(tmp_path):
    # L4 steps take ~53 ms; at 10x a 60-token answer takes ~0.3 s, so the queue is visible for ~0.6 s
    with emulator(tmp_path, "--model", "m", "--gpu-type", "nvidia-l4", "--max-num-seqs", "2",
                  "--time-scale", "10") as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        threads = [threading.Thread(target=chat, args=(base, f"q{i} [tokens=60]", client)) for i in range(6)]
        for t in threads:
            t.start()
        seen = set()
        deadline = time.monotonic() + 10
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            values = metric_values(base)
            seen.add((values["vllm:num_requests_running" + LABEL], values["vllm:num_requests_waiting" + LABEL],
                      values["vllm:kv_cache_usage_perc" + LABEL] > 0))
            time.sleep(0.01)
        for t in threads:
            t.join()
        assert max(running for running, _, _ in seen) == 2
        assert max(waiting for _, waiting, _ in seen) >= 3
        assert any(kv for _, _, kv in seen)
        after = metric_values(base)
        assert after["vllm:num_requests_running" + LABEL] == 0 and after["vllm:kv_cache_usage_perc" + LABEL] == 0
        assert after["vllm:generation_tokens_total" + LABEL] == 360
        assert after["vllm:request_queue_time_seconds_count" + LABEL] == 6


def test_health_answers_503_until_the_startup_delay_has_passed(tmp_path):
    with emulator(tmp_path, "--model", "m", "--startup-delay", "1.0", ready_path="/version") as base:
        assert httpx.get(base + "/health").status_code == 503
        with pytest.raises(openai.InternalServerError) as err:
            chat(base, "too early")
        assert err.value.status_code == 503
        deadline = time.monotonic() + 10
        while httpx.get(base + "/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(base + "/health").status_code == 200
        assert chat(base, "now [tokens=3]").usage.completion_tokens == 3


def test_injected_failures_answer_500_and_legacy_names_replace_the_kv_metric(tmp_path):
    with emulator(tmp_path, "--model", "m", "--fail-rate", "1", "--legacy-metric-names", "--instant") as base:
        with pytest.raises(openai.InternalServerError) as err:
            chat(base, "fail")
        assert err.value.status_code == 500 and "injected" in err.value.body["message"]
        assert httpx.post(base + "/_emulator/config", json={"fail_rate": 0}).json()["fail_rate"] == 0
        assert chat(base, "ok [tokens=2]").usage.completion_tokens == 2
        stats = httpx.get(base + "/_emulator/stats").json()
        assert stats["injected_failures"] == 1 and stats["total"] == 2
        names = {key.split("{")[0] for key in metric_values(base)}
        assert "vllm:gpu_cache_usage_perc" in names and "vllm:kv_cache_usage_perc" not in names


def test_a_share_of_requests_fails_at_the_fail_rate(tmp_path):
    with emulator(tmp_path, "--model", "m", "--fail-rate", "0.5", "--fail-seed", "3", "--instant") as base:
        with httpx.Client(base_url=base) as http:
            codes = [http.post("/v1/completions", json={"model": "m", "prompt": "x", "max_tokens": 1}).status_code
                     for _ in range(60)]
    assert set(codes) == {200, 500}
    assert 15 <= codes.count(500) <= 45


def test_an_engine_set_unhealthy_answers_503_until_set_healthy_again(tmp_path):
    with emulator(tmp_path, "--model", "m", "--instant") as base:
        httpx.post(base + "/_emulator/config", json={"healthy": False})
        assert httpx.get(base + "/health").status_code == 503
        assert httpx.post(base + "/v1/completions", json={"model": "m", "prompt": "x"}).status_code == 503
        httpx.post(base + "/_emulator/config", json={"healthy": True})
        assert httpx.get(base + "/health").status_code == 200
        assert httpx.post(base + "/_emulator/config", json={"time_scale": "fast"}).status_code == 400


def test_an_instant_engine_still_streams_token_by_token_and_counts(tmp_path):
    with emulator(tmp_path, "--model", "m", "--instant") as base:
        stream = chat(base, "fast [tokens=10]", stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 10
        assert chunks[-1].usage.completion_tokens == 10
        values = metric_values(base)
        assert values["vllm:generation_tokens_total" + LABEL] == 10
        assert values["vllm:num_requests_running" + LABEL] == 0
        assert httpx.get(base + "/_emulator/stats").json()["in_flight"] == 0


def test_a_model_too_big_for_its_gpu_refuses_to_start():
    done = subprocess.run(tokenfleet_cmd("emulate-engine", "--parameters-b", "70", "--gpu-type", "nvidia-l4"),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "does not fit" in done.stderr
