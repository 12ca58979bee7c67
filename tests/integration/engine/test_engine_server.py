"""The engine emulator as a process, driven by the official openai client like a vLLM server."""

from __future__ import annotations

import json
import statistics

import httpx
import openai
import pytest

from tests.support.engines import metric_values
from tokenfleet.engine import text

pytestmark = pytest.mark.timeout(60)


@pytest.fixture()
def client(engine):
    return openai.OpenAI(base_url=engine + "/v1", api_key="unused", max_retries=0)


def test_chat_completion_reports_usage_and_a_complete_answer(client):
    resp = client.chat.completions.create(
        model="small", messages=[{"role": "user", "content": "Say hello [tokens=12]"}])
    choice = resp.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert resp.usage.completion_tokens == 12 == text.count_tokens(choice.message.content)
    assert resp.usage.prompt_tokens == text.chat_prompt_tokens([{"role": "user", "content": "Say hello [tokens=12]"}])
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 12
    assert resp.model == "small"


def test_max_tokens_cuts_the_answer_with_finish_reason_length(client):
    full = client.chat.completions.create(model="small", messages=[{"role": "user", "content": "Tell [tokens=30]"}])
    cut = client.chat.completions.create(model="small", messages=[{"role": "user", "content": "Tell [tokens=30]"}],
                                         max_tokens=10)
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 10
    assert full.choices[0].message.content.startswith(cut.choices[0].message.content)


def test_answers_depend_only_on_model_prompt_and_seed(client):
    def ask(model, prompt, seed):
        return client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], seed=seed).choices[0].message.content

    first = ask("small", "What is a KV cache?", 1)
    assert ask("small", "What is a KV cache?", 1) == first
    assert ask("small-alias", "What is a KV cache?", 1) == first  # an alias is the same engine
    assert ask("small", "What is a KV cache?", 2) != first
    assert ask("small", "What is paged attention?", 1) != first


def test_streaming_chat_sends_tokens_in_chunks_and_usage_last(client):
    stream = client.chat.completions.create(
        model="small", messages=[{"role": "user", "content": "Stream it [tokens=20]"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) > 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20
    assert text.count_tokens("".join(c.choices[0].delta.content for c in content)) == 20


def test_chat_logprobs_are_high_for_easy_prompts_and_low_for_hard_ones(client):
    def mean_logprob(prompt):
        resp = client.chat.completions.create(
            model="small", messages=[{"role": "user", "content": prompt}], logprobs=True, top_logprobs=3)
        content = resp.choices[0].logprobs.content
        assert len(content) == resp.usage.completion_tokens
        assert all(len(t.top_logprobs) == 3 and t.top_logprobs[0].token == t.token for t in content)
        assert all(t.bytes == list(t.token.encode()) for t in content)
        return statistics.fmean(t.logprob for t in content)

    # capability 0.5: difficulty 0.2 is easy, 0.9 is 0.4 beyond it (-0.3 - 3 x 0.4 = -1.5)
    assert -0.35 < mean_logprob("Easy one [difficulty=0.2] [tokens=40]") < -0.1
    assert mean_logprob("Hard one [difficulty=0.9] [tokens=40]") < -1.3


def test_streamed_chat_logprobs_come_with_each_chunk(client):
    stream = client.chat.completions.create(
        model="small", messages=[{"role": "user", "content": "Go [tokens=8]"}], stream=True, logprobs=True)
    tokens = [t for c in stream if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert len(tokens) == 8 and all(t.logprob < 0 for t in tokens)


def test_completions_return_text_and_logprobs_in_the_legacy_format(client):
    resp = client.completions.create(model="small", prompt="Once upon a time", max_tokens=6, logprobs=2)
    choice = resp.choices[0]
    assert choice.finish_reason in ("length", "stop")
    assert len(choice.logprobs.tokens) == resp.usage.completion_tokens == len(choice.logprobs.token_logprobs)
    assert "".join(choice.logprobs.tokens) == choice.text
    assert choice.logprobs.text_offset[0] == 0 and len(choice.logprobs.top_logprobs[0]) == 2
    assert resp.usage.prompt_tokens == text.count_tokens("Once upon a time")


def test_streaming_completions_end_with_usage(client):
    chunks = list(client.completions.create(model="small", prompt="Count [tokens=5]", max_tokens=50, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) != ""
    assert chunks[-1].usage.completion_tokens == 5


def test_n_choices_share_one_prompt(client):
    resp = client.chat.completions.create(
        model="small", messages=[{"role": "user", "content": "Pick [tokens=4]"}], n=3, temperature=0.7, seed=5)
    assert [c.index for c in resp.choices] == [0, 1, 2]
    assert resp.usage.completion_tokens == 12
    assert len({c.message.content for c in resp.choices}) > 1


def test_models_lists_every_served_name(client):
    assert [m.id for m in client.models.list().data] == ["small", "small-alias"]


def test_unknown_model_is_404_and_bad_fields_are_400(client, engine):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "nope" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="small", messages=[], max_tokens=5)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}], top_logprobs=2)
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="small", prompt="x", max_tokens=100_000)
    assert "maximum context length" in err.value.body["message"]
    raw = httpx.post(engine + "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert raw.status_code == 400 and set(raw.json()["error"]) >= {"message", "type", "code"}


def test_health_and_version_answer_like_vllm(engine):
    assert httpx.get(engine + "/health").status_code == 200
    assert httpx.get(engine + "/version").json()["version"]


def test_metrics_use_vllm_names_and_count_tokens(client, engine):
    before = metric_values(engine)
    resp = client.chat.completions.create(model="small", messages=[{"role": "user", "content": "Metrics [tokens=7]"}])
    after = metric_values(engine)
    label = '{model_name="small"}'
    assert after["vllm:generation_tokens_total" + label] - before["vllm:generation_tokens_total" + label] == 7
    assert (after["vllm:prompt_tokens_total" + label] - before["vllm:prompt_tokens_total" + label]
            == resp.usage.prompt_tokens)
    stop = 'vllm:request_success_total{finished_reason="stop",model_name="small"}'
    assert after[stop] - before[stop] == 1
    for name in ("time_to_first_token_seconds", "e2e_request_latency_seconds"):
        assert after[f"vllm:{name}_count{label}"] - before[f"vllm:{name}_count{label}"] == 1
    for name in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"):
        assert f"vllm:{name}{label}" in after
    assert not any(k.startswith("vllm:gpu_cache_usage_perc") for k in after)


def test_stats_count_calls_by_endpoint_and_model(client, engine):
    httpx.post(engine + "/_emulator/reset")
    client.chat.completions.create(model="small", messages=[{"role": "user", "content": "a [tokens=2]"}])
    client.chat.completions.create(model="small-alias", messages=[{"role": "user", "content": "b [tokens=2]"}])
    client.completions.create(model="small", prompt="c", max_tokens=2)
    stats = httpx.get(engine + "/_emulator/stats").json()
    assert stats["total"] == 3 and stats["in_flight"] == 0
    assert stats["requests"]["/v1/chat/completions"] == {"small": 1, "small-alias": 1}
    assert stats["requests"]["/v1/completions"] == {"small": 1}
    assert stats["recent"][-1]["body"]["prompt"] == "c"


def test_a_client_that_goes_away_aborts_its_request(engine):
    before = metric_values(engine)
    body = {"model": "small", "messages": [{"role": "user", "content": "Long [tokens=3000]"}], "stream": True}
    with httpx.stream("POST", engine + "/v1/chat/completions", json=body) as resp:
        for i, _ in enumerate(resp.iter_lines()):
            if i > 4:
                break
    abort = 'vllm:request_success_total{finished_reason="abort",model_name="small"}'
    for _ in range(100):
        after = metric_values(engine)
        if after[abort] > before[abort]:
            break
        httpx.get(engine + "/health")
    assert after[abort] - before[abort] == 1
    assert json.loads(httpx.get(engine + "/_emulator/stats").text)["in_flight"] == 0


def test_a_shared_system_prompt_is_served_from_the_prefix_cache(client, engine):
    system = {"role": "system", "content": "You answer questions about tokenfleet, briefly and exactly. " * 20}
    before = metric_values(engine)
    for question in ("What is a tier? [tokens=2]", "What is a fleet? [tokens=2]"):
        client.chat.completions.create(model="small", messages=[system, {"role": "user", "content": question}])
    after = metric_values(engine)
    label = '{model_name="small"}'
    queries = after["vllm:prefix_cache_queries_total" + label] - before["vllm:prefix_cache_queries_total" + label]
    hits = after["vllm:prefix_cache_hits_total" + label] - before["vllm:prefix_cache_hits_total" + label]
    assert 0.3 * queries < hits < 0.5 * queries  # the second request reuses the system prompt's blocks
