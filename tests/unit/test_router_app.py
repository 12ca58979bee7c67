"""The router app against inline upstreams that count their calls: API, errors, caching, coalescing, cascade."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from tests.support.procs import free_port
from tests.support.router import (
    DET, FRONTS, HELLO, FakeTier, assert_openai_error, client, config, fleet, post, router_at, serve,
)


@FRONTS
async def test_chat_completions_and_models_pass_through_with_tier_headers(front):
    small = FakeTier("small")
    async with fleet(small, front=front) as (url, _):
        raw = await client(url).chat.completions.with_raw_response.create(model="chat", messages=HELLO)
        chat = raw.parse()
        assert chat.choices[0].message.content == "Hello there, friend."
        assert raw.headers["x-tokenfleet-tier"] == "small" and raw.headers["x-tokenfleet-cache"] == "miss"
        assert float(raw.headers["x-tokenfleet-cost-usd"]) == 0.0
        comp = await client(url).completions.create(model="small", prompt="Once")
        assert comp.choices[0].text == "Hello there, friend."
        models = await client(url).models.list()
        assert [m.id for m in models.data] == ["chat", "auto", "small"]
    assert [b["model"] for b in small.bodies] == ["small", "small"]  # served name sent upstream


async def test_cost_header_and_metrics_use_the_tiers_prices():
    small = FakeTier("small")
    prices = {"small": {"inputCostPerMillion": 1.0, "outputCostPerMillion": 4.0}}
    async with fleet(small, tier_extra=prices) as (url, core):
        resp = await post(url, {"model": "chat", "messages": HELLO})
        assert resp.headers["x-tokenfleet-cost-usd"] == f"{(10 * 1.0 + 5 * 4.0) / 1e6:.8f}"
        text = core.metrics.exposition().decode()
    assert "tokenfleet_router_budget_limit_usd{" not in text  # no budget, no limit series
    assert 'tokenfleet_router_tokens_total{direction="output",fleet="chat",tenant="default",tier="small"} 5.0' in text
    assert core.budget.spend == pytest.approx(30 / 1e6)


@pytest.mark.parametrize("body, headers, status, code", [
    (b"{not json", {}, 400, "invalid_json"),
    (b"[1, 2]", {}, 400, "invalid_json"),
    ({"messages": HELLO}, {}, 400, "missing_required_parameter"),
    ({"model": "chat"}, {}, 400, "missing_required_parameter"),
    ({"model": "chat", "messages": HELLO, "max_tokens": -3}, {}, 400, "invalid_value"),
    ({"model": "chat", "messages": HELLO, "temperature": "hot"}, {}, 400, "invalid_value"),
    ({"model": "chat", "messages": HELLO, "top_p": [1]}, {}, 400, "invalid_value"),
    ({"model": "chat", "messages": HELLO, "n": "2"}, {}, 400, "invalid_value"),
    ({"model": "chat", "messages": HELLO, "stream": True, "stream_options": 3}, {}, 400, "invalid_value"),
    ({"model": "chat", "messages": HELLO}, {"Authorization": "Bearer nope"}, 401, "invalid_api_key"),
    ({"model": "chat", "messages": HELLO}, {}, 401, "invalid_api_key"),
    ({"model": "chat", "messages": [{"role": "user", "content": "x" * 5000}]}, {"Authorization": "Bearer k1"},
     413, "request_too_large"),
])
@FRONTS
async def test_bad_requests_get_openai_shaped_errors(body, headers, status, code, front):
    small = FakeTier("small")
    keys = {"k1": "team-a"}
    if status == 400:
        headers = {"Authorization": "Bearer k1", "Content-Type": "application/json"}
    async with fleet(small, keys=keys, limits={"maxBodyBytes": 4096}, front=front) as (url, _):
        assert_openai_error(await post(url, body, headers), status, code)
    assert small.calls == 0


async def test_openai_client_sees_authentication_error_for_unknown_key():
    async with fleet(FakeTier("small"), keys={"good": "t"}) as (url, _):
        with pytest.raises(openai.AuthenticationError):
            await client(url, "bad").chat.completions.create(model="chat", messages=HELLO)
        with pytest.raises(openai.AuthenticationError):
            await client(url, "bad").models.list()


@FRONTS
async def test_unknown_route_is_an_openai_shaped_404(front):
    async with fleet(FakeTier("small"), front=front) as (url, _):
        assert_openai_error(await post(url, {}, path="/v1/embeddings"), 404, "not_found")
        async with httpx.AsyncClient() as http:
            assert_openai_error(await http.get(url + "/v1/chat/completions"), 405, "method_not_allowed")
            assert_openai_error(await http.post(url + "/v1/models"), 405, "method_not_allowed")
            assert_openai_error(await http.delete(url + "/healthz"), 405, "method_not_allowed")


async def test_all_tiers_saturated_answers_429_with_retry_after():
    slow = FakeTier("small", delay=0.5)
    limits = {"small": {"maxConcurrency": 1, "maxQueue": 0}}
    async with fleet(slow, tier_extra=limits) as (url, core):
        first = asyncio.ensure_future(post(url, {"model": "chat", "messages": HELLO, "temperature": 1}))
        while core.tiers[0].gate.waiting == 0 and slow.calls == 0:
            await asyncio.sleep(0.01)
        second = await post(url, {"model": "chat", "messages": HELLO, "temperature": 1})
        assert (await first).status_code == 200
    assert_openai_error(second, 429, "all_tiers_saturated")
    assert int(second.headers["retry-after"]) >= 1


async def test_a_saturated_tier_overflows_to_the_next():
    slow, big = FakeTier("small", delay=0.5), FakeTier("big")
    limits = {"small": {"maxConcurrency": 1, "maxQueue": 0}}
    async with fleet(slow, big, tier_extra=limits, routing={"mode": "fixed"}) as (url, core):
        first = asyncio.ensure_future(post(url, {"model": "chat", "messages": HELLO, "temperature": 1}))
        while slow.calls == 0:
            await asyncio.sleep(0.01)
        second = await post(url, {"model": "chat", "messages": HELLO, "temperature": 1})
        await first
    assert second.headers["x-tokenfleet-tier"] == "big"
    assert 'reason="saturated"' in core.metrics.exposition().decode()


async def test_every_tier_failing_answers_502():
    async with fleet(FakeTier("small", status=500), FakeTier("big", status=503)) as (url, _):
        resp = await post(url, {"model": "chat", "messages": HELLO})
    assert_openai_error(resp, 502, "all_tiers_failed")
    assert "small" in resp.json()["error"]["message"] and "big" in resp.json()["error"]["message"]


TOO_LONG = "This model's maximum context length is 8 tokens. However, your request has 10 input tokens."


@FRONTS
async def test_a_context_window_refusal_moves_on_and_any_other_4xx_goes_back_to_the_client(front):
    short, bad, big = (FakeTier("small", status=400, error=TOO_LONG), FakeTier("small", status=400, error="no"),
                       FakeTier("big"))
    async with fleet(short, big, front=front) as (url, core):
        moved = await post(url, {"model": "chat", "messages": HELLO})
        pinned = await post(url, {"model": "small", "messages": HELLO})
        metrics = core.metrics.exposition().decode()
    assert moved.status_code == 200 and moved.headers["x-tokenfleet-tier"] == "big"
    assert pinned.status_code == 400 and pinned.json()["error"]["message"] == TOO_LONG
    assert 'from_tier="small",reason="context_length",to_tier="big"' in metrics
    async with fleet(bad, big, front=front) as (url, _):
        refused = await post(url, {"model": "chat", "messages": HELLO})
    assert refused.status_code == 400 and refused.json()["error"]["message"] == "no"
    assert big.calls == 1  # the request that moved up; the other refusal never reached it


async def test_a_context_window_refusal_then_failures_answers_502_naming_both():
    async with fleet(FakeTier("small", status=400, error=TOO_LONG), FakeTier("big", status=503)) as (url, _):
        resp = await post(url, {"model": "chat", "messages": HELLO})
    assert_openai_error(resp, 502, "all_tiers_failed")
    assert "small: the request exceeds its context window" in resp.json()["error"]["message"]
    assert "big" in resp.json()["error"]["message"]


async def test_a_dead_tier_is_skipped_to_the_next():
    big = FakeTier("big")
    async with serve(big.app()) as big_url:
        cfg = config([("small", f"http://127.0.0.1:{free_port()}"), ("big", big_url)], routing={"mode": "fixed"})
        async with router_at(cfg) as (url, core):
            chat = await client(url).chat.completions.with_raw_response.create(model="chat", messages=HELLO)
            stream = await client(url).chat.completions.create(model="chat", messages=HELLO, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            metrics = core.metrics.exposition().decode()
    assert chat.headers["x-tokenfleet-tier"] == "big" and text == "Hello there, friend."
    assert big.calls == 2
    assert 'from_tier="small",reason="tier_error",to_tier="big"' in metrics


async def test_a_repeated_deterministic_request_reaches_the_backend_once():
    small = FakeTier("small")
    async with fleet(small) as (url, core):
        answers = [await post(url, {"model": "chat", "messages": HELLO, **DET}) for _ in range(3)]
        sampled = [await post(url, {"model": "chat", "messages": HELLO, "temperature": 0.8}) for _ in range(2)]
    assert small.calls == 1 + 2  # sampled requests are never cached
    assert [a.headers["x-tokenfleet-cache"] for a in answers] == ["miss", "local", "local"]
    assert answers[1].json() == answers[0].json()
    assert all(s.headers["x-tokenfleet-cache"] == "miss" for s in sampled)


async def test_truncated_answers_are_not_cached():
    small = FakeTier("small", finish="length")
    async with fleet(small) as (url, _):
        for _ in range(2):
            await post(url, {"model": "chat", "messages": HELLO, **DET})
    assert small.calls == 2


@FRONTS
async def test_sixteen_concurrent_identical_requests_reach_the_backend_once(front):
    small = FakeTier("small", delay=0.3)
    async with fleet(small, front=front) as (url, core):
        body = {"model": "chat", "messages": HELLO, **DET}
        answers = await asyncio.gather(*[post(url, body) for _ in range(16)])
        streams = await asyncio.gather(*[_stream_text(url, {**body, "messages": [{"role": "user", "content": "s"}]})
                                         for _ in range(16)])
    assert small.calls == 2
    assert {a.json()["choices"][0]["message"]["content"] for a in answers} == {"Hello there, friend."}
    assert sorted(a.headers["x-tokenfleet-cache"] for a in answers) == ["coalesced"] * 15 + ["miss"]
    assert set(streams) == {"Hello there, friend."}


async def _stream_text(url: str, body: dict) -> str:
    stream = await client(url).chat.completions.create(**body, stream=True)
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def test_coalescing_window_gathers_requests_that_arrive_shortly_after():
    small = FakeTier("small")
    async with fleet(small, coalescing={"enabled": True, "windowMs": 200}, cache={"localEntries": 0}) as (url, _):
        body = {"model": "chat", "messages": HELLO, **DET}
        first = asyncio.ensure_future(post(url, body))
        await asyncio.sleep(0.05)
        second = await post(url, body)
        await first
    assert small.calls == 1 and second.headers["x-tokenfleet-cache"] == "coalesced"


async def test_a_low_confidence_answer_escalates_and_a_confident_one_does_not():
    small, big = FakeTier("small", logprob=-2.0), FakeTier("big", logprob=-0.05)
    async with fleet(small, big) as (url, core):
        unsure = await post(url, {"model": "chat", "messages": HELLO})
        small.logprob = -0.1
        sure = await post(url, {"model": "chat", "messages": [{"role": "user", "content": "other"}]})
        asked = await post(url, {"model": "auto", "messages": HELLO, "logprobs": True})
    assert unsure.headers["x-tokenfleet-tier"] == "big" and sure.headers["x-tokenfleet-tier"] == "small"
    assert small.calls == 3 and big.calls == 1
    assert small.bodies[0]["logprobs"] is True and "logprobs" not in big.bodies[0]  # last tier is not judged
    assert unsure.json()["choices"][0]["logprobs"] is None and sure.json()["choices"][0]["logprobs"] is None
    assert asked.json()["choices"][0]["logprobs"]["content"][0]["logprob"] == -0.1  # kept when asked
    assert 'reason="low_confidence"' in core.metrics.exposition().decode()


async def test_min_logprob_confidence_and_max_escalations():
    tiers = [FakeTier("a", logprob=-3.0), FakeTier("b", logprob=-3.0), FakeTier("c", logprob=-3.0)]
    routing = {"mode": "cascade", "cascade": {"confidence": "min-logprob", "threshold": -1.0, "maxEscalations": 1}}
    async with fleet(*tiers, routing=routing) as (url, _):
        resp = await post(url, {"model": "chat", "messages": HELLO})
    assert resp.headers["x-tokenfleet-tier"] == "b"  # one escalation allowed: b is kept unjudged
    assert [t.calls for t in tiers] == [1, 1, 0]


async def test_a_pinned_tier_is_used_alone_and_caps_clamp_max_tokens():
    small, big = FakeTier("small", logprob=-5.0), FakeTier("big")
    caps = {"small": {"maxOutputTokens": 50}}
    async with fleet(small, big, tier_extra=caps, defaultMaxTokens=200) as (url, _):
        pinned = await post(url, {"model": "small", "messages": HELLO, "max_tokens": 500})
        await post(url, {"model": "chat", "messages": HELLO, "temperature": 1})
    assert pinned.headers["x-tokenfleet-tier"] == "small" and big.calls == 1
    assert small.bodies[0]["max_tokens"] == 50 and "logprobs" not in small.bodies[0]
    assert small.bodies[1]["max_tokens"] == 50 and big.bodies[0]["max_tokens"] == 200


async def test_complexity_mode_starts_at_the_tier_the_request_calls_for():
    small, big = FakeTier("small"), FakeTier("big")
    routing = {"mode": "complexity", "complexity": {"boundaries": [0.5]}}
    hard = "Prove step by step that the integral of x^2 = x^3/3, then compare with:\n```python\ndef f(x): pass\n```"
    async with fleet(small, big, routing=routing) as (url, _):
        easy = await post(url, {"model": "chat", "messages": HELLO})
        tough = await post(url, {"model": "chat", "messages": [{"role": "user", "content": hard}]})
    assert easy.headers["x-tokenfleet-tier"] == "small" and tough.headers["x-tokenfleet-tier"] == "big"
    assert small.calls == 1


async def test_two_tenants_never_share_a_cache_entry():
    small = FakeTier("small")
    async with fleet(small, keys={"ka": "tenant-a", "kb": "tenant-b"}) as (url, core):
        body = {"model": "chat", "messages": HELLO, **DET}
        seen = []
        for key in ("ka", "kb", "ka", "kb"):
            resp = await post(url, body, {"Authorization": f"Bearer {key}"})
            seen.append(resp.headers["x-tokenfleet-cache"])
        text = core.metrics.exposition().decode()
    assert small.calls == 2 and seen == ["miss", "miss", "local", "local"]
    assert 'tenant="tenant-b"' in text


async def test_budget_reject_answers_429_once_the_month_is_spent():
    small = FakeTier("small")
    prices = {"small": {"outputCostPerMillion": 1_000_000.0}}  # $1 per token
    async with fleet(small, tier_extra=prices, budget={"monthlyUSD": 3, "onExceeded": "reject"}) as (url, core):
        first = await post(url, {"model": "chat", "messages": HELLO, "temperature": 1})
        second = await post(url, {"model": "chat", "messages": HELLO, "temperature": 1})
        metrics = core.metrics.exposition().decode()
    assert first.status_code == 200
    assert_openai_error(second, 429, "budget_exceeded")
    assert 'tokenfleet_router_budget_limit_usd{fleet="chat"} 3.0' in metrics  # what the budget alert compares with


async def test_budget_cheapest_tier_sends_everything_to_the_first_tier():
    small, big = FakeTier("small", logprob=-5.0), FakeTier("big")
    prices = {"small": {"outputCostPerMillion": 1_000_000.0}}
    async with fleet(small, big, tier_extra=prices, budget={"monthlyUSD": 1}) as (url, _):
        first = await post(url, {"model": "chat", "messages": HELLO, "temperature": 1})
        second = await post(url, {"model": "big", "messages": HELLO, "temperature": 1})
    assert first.headers["x-tokenfleet-tier"] == "big"  # escalated while under budget
    assert second.headers["x-tokenfleet-tier"] == "small"  # over budget: even a pinned request


async def test_a_tier_that_stays_silent_past_the_timeout_is_skipped():
    stalled, big = FakeTier("small", delay=0.6), FakeTier("big")
    async with fleet(stalled, big, routing={"mode": "fixed"}, limits={"upstreamTimeoutSeconds": 0.15}) as (url, core):
        resp = await post(url, {"model": "chat", "messages": HELLO})
    assert resp.headers["x-tokenfleet-tier"] == "big" and stalled.calls == 1
    assert 'reason="tier_error"' in core.metrics.exposition().decode()


@pytest.mark.parametrize("answer", [b"not json", b"[1]", b'{"choices": [1]}', b'{"choices": "x"}'])
async def test_a_tier_answering_200_with_a_malformed_body_is_skipped(answer):
    async def broken(request):
        return Response(answer, media_type="application/json")

    big = FakeTier("big")
    odd = Starlette(routes=[Route("/v1/chat/completions", broken, methods=["POST"])])
    async with serve(odd) as odd_url, serve(big.app()) as big_url:
        async with router_at(config([("odd", odd_url), ("big", big_url)], routing={"mode": "fixed"})) as (url, _):
            resp = await post(url, {"model": "chat", "messages": HELLO})
    assert resp.status_code == 200 and resp.headers["x-tokenfleet-tier"] == "big"
