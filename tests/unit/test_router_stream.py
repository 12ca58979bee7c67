"""Streaming through the router: pass-through, cascade judging, cache replay, coalesced fan-out, failures."""

from __future__ import annotations

import asyncio

import httpx
import orjson

from tests.support.procs import free_port
from tests.support.router import DET, FRONTS, HELLO, FakeTier, client, config, fleet, post, router_at, serve


async def raw_stream(url: str, body: dict, path: str = "/v1/chat/completions") -> tuple[httpx.Response, list]:
    """The response and its events as they arrive: parsed chunks, comments as str, then the string '[DONE]'."""
    events = []
    async with httpx.AsyncClient(verify=False) as http:
        async with http.stream("POST", url + path, json={**body, "stream": True}) as resp:
            buffer = b""
            async for piece in resp.aiter_bytes():
                buffer += piece
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    data = event.removeprefix(b"data: ")
                    events.append(event.decode() if event.startswith(b":") else
                                  "[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return resp, events


def cost_of(events: list) -> float:
    """The cost comment a stream ends with, just before [DONE]."""
    assert events[-1] == "[DONE]" and events[-2].startswith(": x-tokenfleet-cost-usd: "), events[-3:]
    return float(events[-2].rsplit(" ", 1)[1])


def text_of(events: list) -> str:
    out = ""
    for e in events:
        if isinstance(e, dict):
            for c in e.get("choices", []):
                out += (c.get("delta") or {}).get("content") or c.get("text") or ""
    return out


@FRONTS
async def test_streams_pass_through_chunk_by_chunk_with_usage_when_asked(front):
    small = FakeTier("small", token_delay=0.02)
    async with fleet(small, front=front) as (url, core):
        stream = await client(url).chat.completions.create(
            model="chat", messages=HELLO, stream=True, stream_options={"include_usage": True})
        chunks = [c async for c in stream]
        resp, events = await raw_stream(url, {"model": "chat", "messages": HELLO, "temperature": 1})
        comp, comp_events = await raw_stream(url, {"model": "small", "prompt": "Hi", "temperature": 1},
                                             "/v1/completions")
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 5  # one chunk per token
    assert chunks[-1].usage.completion_tokens == 5 and not chunks[-1].choices
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["x-tokenfleet-tier"] == "small"
    assert events[-1] == "[DONE]" and all("usage" not in e for e in events[:-1])  # not asked: dropped
    assert text_of(comp_events) == "Hello there, friend." and comp_events[-1] == "[DONE]"
    assert all(b["stream_options"]["include_usage"] for b in small.bodies)  # the router always counts
    ttft = core.metrics.histograms["time_to_first_token_seconds"][("small",)]
    assert sum(ttft[0]) == 3 and ttft[1] / 3 >= 0.02  # first token, not the role chunk sent at once


async def test_a_stream_is_judged_on_its_first_tokens_and_escalated_before_release():
    small, big = FakeTier("small", logprob=-3.0), FakeTier("big", logprob=-0.1)
    routing = {"mode": "cascade", "cascade": {"judgeTokens": 2}}
    async with fleet(small, big, routing=routing) as (url, core):
        resp, events = await raw_stream(url, {"model": "chat", "messages": HELLO})
        small.logprob = -0.2
        kept, kept_events = await raw_stream(url, {"model": "chat", "messages": [{"role": "user", "content": "b"}]})
    assert resp.headers["x-tokenfleet-tier"] == "big" and kept.headers["x-tokenfleet-tier"] == "small"
    assert text_of(events) == text_of(kept_events) == "Hello there, friend."
    assert all(c.get("logprobs") is None for e in kept_events if isinstance(e, dict) for c in e["choices"])
    assert events.count("[DONE]") == 1 and kept_events[-1] == "[DONE]"


async def test_streaming_still_streams_with_caching_coalescing_and_cascading_on():
    small, big = FakeTier("small", logprob=-3.0, token_delay=0.05), FakeTier("big", token_delay=0.05)
    async with fleet(small, big, routing={"mode": "cascade", "cascade": {"judgeTokens": 1}}) as (url, _):
        body = {"model": "chat", "messages": HELLO, **DET}
        arrivals: list[float] = []

        async def timed():
            loop = asyncio.get_running_loop()
            stream = await client(url).chat.completions.create(**body, stream=True)
            text = ""
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    arrivals.append(loop.time())
                    text += chunk.choices[0].delta.content
            return text

        texts = await asyncio.gather(*[timed() for _ in range(4)])
        replay, replay_events = await raw_stream(url, body)
        as_json = await post(url, body)
    assert set(texts) == {"Hello there, friend."}
    assert max(arrivals) - min(arrivals) > 0.1  # tokens arrived over time, not in one block at the end
    assert big.calls == 1 and small.calls == 1  # four streams shared one escalated call
    assert replay.headers["x-tokenfleet-cache"] == "local" and text_of(replay_events) == "Hello there, friend."
    assert replay_events[-1] == "[DONE]"
    assert as_json.json()["choices"][0]["message"]["content"] == "Hello there, friend."  # assembled for the cache
    assert big.calls == 1


async def test_a_stream_ends_with_its_cost_as_a_comment_and_followers_and_replays_cost_nothing():
    small = FakeTier("small", token_delay=0.05)
    prices = {"small": {"inputCostPerMillion": 1.0, "outputCostPerMillion": 4.0}}
    async with fleet(small, tier_extra=prices) as (url, core):
        body = {"model": "chat", "messages": HELLO, **DET}
        (leader, led), (follower, followed) = await asyncio.gather(raw_stream(url, body), raw_stream(url, body))
        replay, replayed = await raw_stream(url, body)
    assert small.calls == 1 and {leader.headers["x-tokenfleet-cache"], follower.headers["x-tokenfleet-cache"]} == \
        {"miss", "coalesced"} and replay.headers["x-tokenfleet-cache"] == "local"
    costs = {r.headers["x-tokenfleet-cache"]: cost_of(e) for r, e in ((leader, led), (follower, followed))}
    assert costs["miss"] == round((10 * 1.0 + 5 * 4.0) / 1e6, 8) == round(core.budget.spend, 8)
    assert costs["coalesced"] == 0.0 and cost_of(replayed) == 0.0


async def test_an_escalated_stream_bills_the_judged_opening_and_the_kept_stream():
    small, big = FakeTier("small", logprob=-3.0), FakeTier("big")
    prices = {"small": {"outputCostPerMillion": 1e6}, "big": {"outputCostPerMillion": 2e6}}  # $1 and $2 a token
    routing = {"mode": "cascade", "cascade": {"judgeTokens": 2}}
    async with fleet(small, big, routing=routing, tier_extra=prices) as (url, core):
        resp, events = await raw_stream(url, {"model": "chat", "messages": HELLO})
        tokens = dict(core.metrics.counters["tokens"])
    assert resp.headers["x-tokenfleet-tier"] == "big"
    assert tokens[("small", "output", "default")] == 2 and tokens[("big", "output", "default")] == 5
    assert cost_of(events) == 2 * 1.0 + 5 * 2.0


async def test_a_stream_that_breaks_after_release_ends_well_formed():
    small = FakeTier("small", break_after=2)
    async with fleet(small) as (url, _):
        resp, events = await raw_stream(url, {"model": "chat", "messages": HELLO, **DET})
        again, _ = await raw_stream(url, {"model": "chat", "messages": HELLO, **DET})
    assert resp.status_code == 200 and events[-1] == "[DONE]"
    assert any(isinstance(e, dict) and "error" in e for e in events)
    assert text_of(events) == "Hello there"
    assert again.headers["x-tokenfleet-cache"] == "miss"  # a broken stream is never cached


async def test_a_stream_to_a_failing_tier_fails_over_before_release():
    async with fleet(FakeTier("small", status=500), FakeTier("big"), routing={"mode": "fixed"}) as (url, _):
        resp, events = await raw_stream(url, {"model": "chat", "messages": HELLO})
    assert resp.headers["x-tokenfleet-tier"] == "big" and text_of(events) == "Hello there, friend."


async def test_the_router_serves_when_the_cache_service_is_down():
    small = FakeTier("small")
    dead = f"http://127.0.0.1:{free_port()}"
    async with fleet(small, cache={"url": dead, "localEntries": 0, "timeoutMs": 200}) as (url, core):
        answers = [await post(url, {"model": "chat", "messages": HELLO, **DET}) for _ in range(4)]
        resp, events = await raw_stream(url, {"model": "chat", "messages": HELLO, **DET})
        text = core.metrics.exposition().decode()
    assert [a.status_code for a in answers] == [200] * 4 and events[-1] == "[DONE]"
    assert 'tokenfleet_router_cache_lookups_total{fleet="chat",result="error"} 5.0' in text


async def test_a_tier_scaled_to_zero_is_waited_for_then_served():
    port = free_port()
    small = FakeTier("small")
    cfg = config([("small", f"http://127.0.0.1:{port}")], tier_extra={"small": {"scalesToZero": True}},
                 limits={"coldStartWaitSeconds": 10})
    async with router_at(cfg) as (url, core):
        pending = asyncio.ensure_future(post(url, {"model": "chat", "messages": HELLO}))
        await asyncio.sleep(0.5)
        waiting = core.metrics.exposition().decode()
        assert not pending.done()
        async with serve(small.app(), port=port):
            resp = await pending
    assert 'tokenfleet_router_tier_waiting_requests{fleet="chat",tier="small"} 1.0' in waiting
    assert resp.status_code == 200 and small.calls == 1


async def test_a_tier_that_does_not_start_in_time_answers_503():
    cfg = config([("small", f"http://127.0.0.1:{free_port()}")], tier_extra={"small": {"scalesToZero": True}},
                 limits={"coldStartWaitSeconds": 0.3})
    async with router_at(cfg) as (url, _):
        resp = await post(url, {"model": "chat", "messages": HELLO})
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "tier_cold_start_timeout"


@FRONTS
async def test_a_client_that_leaves_mid_stream_stops_the_upstream_call(front):
    small = FakeTier("small", tokens=tuple(f" t{i}" for i in range(40)), token_delay=0.05)
    async with fleet(small, front=front) as (url, core):
        async with httpx.AsyncClient(verify=False) as http:
            async with http.stream("POST", url + "/v1/chat/completions",
                                   json={"model": "chat", "messages": HELLO, "stream": True}) as resp:
                async for _ in resp.aiter_bytes():
                    break  # first event, then hang up
        await asyncio.sleep(0.5)
        produced = small.streamed_tokens
        await asyncio.sleep(0.3)
        billed = core.metrics.counters["tokens"][("small", "output", "default")]
    assert produced < 40 and small.streamed_tokens == produced  # nothing generated after the router let go
    assert billed >= 1  # what was generated before the client left is still billed
