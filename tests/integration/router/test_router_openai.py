"""The official openai client (sync, async, streaming) through a real router to emulated engines."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid

import openai
import pytest

from tests.support.engines import calls, emulator, metric_values, router

KEY = "sk-alpha"


def sync_client(base: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": f"{text} ({uuid.uuid4().hex[:8]})"}]


def test_sync_client_chat_completions_and_models(fleet):
    client = sync_client(fleet)
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=ask("Hi [difficulty=0.1]"),
                                                           max_tokens=16)
    chat = raw.parse()
    assert chat.choices[0].message.content and chat.usage.completion_tokens > 0
    assert raw.headers["x-tokenfleet-tier"] == "small" and raw.headers["x-tokenfleet-cache"] == "miss"
    assert chat.choices[0].logprobs is None  # judged on logprobs the client never asked for
    completion = client.completions.create(model="big", prompt="Once upon a time", max_tokens=8)
    assert completion.choices[0].text and completion.model == "big"
    assert [m.id for m in client.models.list().data] == ["chat", "auto", "small", "big"]


def test_sync_streaming_with_usage(fleet):
    stream = sync_client(fleet).chat.completions.create(
        model="auto", messages=ask("Tell me more [difficulty=0.1]"), max_tokens=24, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens > 0


async def test_async_client_chat_and_streaming(fleet):
    client = openai.AsyncOpenAI(base_url=fleet + "/v1", api_key=KEY, max_retries=0)
    chat, stream = await asyncio.gather(
        client.chat.completions.create(model="chat", messages=ask("Hello [difficulty=0.2]"), max_tokens=12),
        client.chat.completions.create(model="chat", messages=ask("Stream [difficulty=0.2]"), max_tokens=12,
                                       stream=True),
    )
    assert chat.choices[0].message.content
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts)
    await client.close()


def test_a_low_confidence_answer_escalates_and_a_confident_one_does_not(fleet, engines):
    before = {n: calls(u) for n, u in engines.items()}
    client = sync_client(fleet)
    hard = client.chat.completions.with_raw_response.create(
        model="chat", messages=ask("Prove it [difficulty=0.9]"), max_tokens=16)
    easy = client.chat.completions.with_raw_response.create(
        model="chat", messages=ask("Say hi [difficulty=0.1]"), max_tokens=16)
    assert hard.headers["x-tokenfleet-tier"] == "big" and easy.headers["x-tokenfleet-tier"] == "small"
    assert calls(engines["small"]) - before["small"] == 2 and calls(engines["big"]) - before["big"] == 1


def test_a_repeated_deterministic_request_reaches_the_backend_once(fleet, engines):
    before = calls(engines["small"])
    messages = ask("What is two plus two? [difficulty=0.1]")
    client = sync_client(fleet)
    first = client.chat.completions.with_raw_response.create(model="chat", messages=messages, temperature=0)
    second = client.chat.completions.with_raw_response.create(model="chat", messages=messages, temperature=0)
    stream = client.chat.completions.create(model="chat", messages=messages, temperature=0, stream=True)
    replayed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert calls(engines["small"]) - before == 1
    assert second.headers["x-tokenfleet-cache"] == "local"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content == replayed


def test_two_tenants_never_share_a_cache_entry(fleet, engines):
    before = calls(engines["small"])
    messages = ask("Shared question [difficulty=0.1]")
    for key in ("sk-alpha", "sk-beta", "sk-alpha", "sk-beta"):
        sync_client(fleet, key).chat.completions.create(model="chat", messages=messages, temperature=0)
    assert calls(engines["small"]) - before == 2


def _post_raw(base: str, data: bytes, key: str | None = KEY) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(base + "/v1/chat/completions", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


@pytest.mark.parametrize("data, key, status, code", [
    (b"{oops", KEY, 400, "invalid_json"),
    (b'{"model": "chat"}', KEY, 400, "missing_required_parameter"),
    (b'{"model": "chat", "messages": [{"role": "user", "content": "x"}]}', None, 401, "invalid_api_key"),
    (b'{"model": "chat", "messages": [{"role": "user", "content": "x"}]}', "sk-wrong", 401, "invalid_api_key"),
    (b'{"model": "chat", "messages": [{"role": "user", "content": "' + b"x" * (1 << 20) + b'"}]}', KEY, 413,
     "request_too_large"),
])
def test_errors_have_the_right_status_and_openai_shape(fleet, data, key, status, code):
    got, body = _post_raw(fleet, data, key)
    assert got == status and body["error"]["code"] == code
    assert body["error"]["message"] and body["error"]["type"]


def test_the_openai_client_raises_its_own_error_types(fleet):
    with pytest.raises(openai.AuthenticationError) as auth:
        sync_client(fleet, "sk-nope").chat.completions.create(model="chat", messages=ask("x"))
    with pytest.raises(openai.BadRequestError) as bad:
        sync_client(fleet).chat.completions.create(model="chat", messages=ask("x"), max_tokens=0)
    assert auth.value.status_code == 401 and bad.value.body["code"] == "invalid_value"


def test_a_dead_tier_is_skipped(logs, engines):
    from tests.support.procs import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    with router(logs, "--tier", f"dead={dead}", "--tier", f"big={engines['big']}", "--mode", "fixed") as base:
        raw = sync_client(base).chat.completions.with_raw_response.create(model="auto", messages=ask("hi"),
                                                                          max_tokens=8)
    assert raw.headers["x-tokenfleet-tier"] == "big" and raw.parse().choices[0].message.content


def test_an_engine_failing_with_5xx_is_skipped(logs, engines):
    with emulator(logs, "--model", "flaky", "--fail-rate", "1", "--instant") as flaky, \
            router(logs, "--tier", f"flaky={flaky}", "--tier", f"big={engines['big']}", "--mode", "fixed") as base:
        raw = sync_client(base).chat.completions.with_raw_response.create(model="auto", messages=ask("hi"),
                                                                          max_tokens=8)
        assert raw.headers["x-tokenfleet-tier"] == "big" and calls(flaky) == 1


def test_a_prompt_too_long_for_the_cheap_tier_moves_up_the_cascade(logs, engines):
    """The cheap tier's context window is 256 tokens: its 400 passes the request on; pinned to it, the client
    gets that 400 (vLLM's message) from the official client."""
    long_prompt = ask("Summarise this. " + "The fleet keeps its replicas busy and its tokens cheap. " * 60)
    with emulator(logs, "--model", "short", "--parameters-b", "1", "--max-model-len", "256", "--time-scale", "50") \
            as short, router(logs, "--tier", f"short={short}", "--tier", f"big={engines['big']}") as base:
        client = sync_client(base, "x")
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=long_prompt, max_tokens=8)
        assert raw.headers["x-tokenfleet-tier"] == "big" and raw.parse().choices[0].message.content
        stream = client.chat.completions.create(model="auto", messages=long_prompt, max_tokens=8, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        with pytest.raises(openai.BadRequestError, match="maximum context length is 256 tokens"):
            client.chat.completions.create(model="short", messages=long_prompt, max_tokens=8)
        short_ok = client.chat.completions.with_raw_response.create(model="auto", messages=ask("hi [difficulty=0.1]"),
                                                                    max_tokens=8)
        assert short_ok.headers["x-tokenfleet-tier"] == "short"  # a prompt that fits stays on the cheap tier
        escalated = [v for k, v in metric_values(base).items()
                     if k.startswith("tokenfleet_router_escalations_total") and 'reason="context_length"' in k]
        assert escalated == [2.0] and calls(short) == 4


def _running(engine: str) -> float:
    return sum(v for k, v in metric_values(engine).items() if k.startswith("vllm:num_requests_running"))


def _wait(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.parametrize("server", ["native", "uvicorn"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_hangs_up_stops_the_engine_request(logs, stream, server):
    """vLLM aborts a request whose connection closes; the router must close its own when its client leaves."""
    with emulator(logs, "--model", "slow", "--time-scale", "1") as slow, \
            router(logs, "--tier", f"slow={slow}", "--mode", "fixed", "--server", server) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=1.0)
        # 2,000 tokens at real-time speed: most of a minute of decoding unless it is aborted
        request = dict(model="slow", messages=ask("write at length"), max_tokens=2000, extra_body={"ignore_eos": True})
        if stream:
            chunks = client.chat.completions.create(stream=True, **request)
            next(iter(chunks))
            chunks.close()  # hang up mid-stream
        else:
            with pytest.raises(openai.APITimeoutError):  # gives up after 1 s and closes its connection
                client.chat.completions.create(**request)
        _wait(lambda: _running(slow) == 0, 5, "the engine still runs the abandoned request")
        assert any(k.startswith("vllm:request_success_total") and 'finished_reason="abort"' in k and v >= 1
                   for k, v in metric_values(slow).items())
        _wait(lambda: any(k.startswith("tokenfleet_router_requests_total") and 'code="499"' in k
                          for k in metric_values(base)), 5, "the router did not count the client's hang-up")
