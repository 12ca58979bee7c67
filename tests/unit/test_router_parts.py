"""The router's pure parts: token economics, the local LRU, SSE relay and replay, settings, coalescing."""

from __future__ import annotations

import asyncio
import calendar

import orjson
import pytest

from tokenfleet.api.routerconfig import TierEndpoint
from tokenfleet.router import sse
from tokenfleet.router.coalesce import Coalescer
from tokenfleet.router.economics import Budget, clamp_max_tokens, request_cost, with_default_max_tokens
from tokenfleet.router.localcache import LocalCache
from tokenfleet.router.metrics import RouterMetrics
from tokenfleet.router.settings import SettingsError, build_config, load_api_keys, parse_tier


@pytest.mark.parametrize("body, default, expected", [
    ({}, 256, {"max_tokens": 256}),
    ({"max_tokens": 10}, 256, {"max_tokens": 10}),
    ({"max_completion_tokens": 10}, 256, {"max_completion_tokens": 10}),
    ({}, None, {}),
])
def test_fleet_default_max_tokens_fills_only_unset_limits(body, default, expected):
    assert with_default_max_tokens(body, default) == expected


@pytest.mark.parametrize("body, cap, expected", [
    ({"max_tokens": 900}, 512, {"max_tokens": 512}),
    ({"max_tokens": 100}, 512, {"max_tokens": 100}),
    ({}, 512, {"max_tokens": 512}),
    ({"max_completion_tokens": 900, "max_tokens": 10}, 512, {"max_completion_tokens": 512, "max_tokens": 10}),
    ({"max_tokens": 900}, None, {"max_tokens": 900}),
])
def test_tier_caps_clamp_max_tokens(body, cap, expected):
    assert clamp_max_tokens(body, cap) == expected


def test_cost_uses_the_tier_price_per_million_tokens():
    tier = TierEndpoint(name="t", url="http://x/v1", servedModel="t", inputCostPerMillion=0.5,
                        outputCostPerMillion=2.0)
    assert request_cost(tier, 1_000_000, 500_000) == pytest.approx(1.5)


def test_budget_is_per_calendar_month():
    now = [calendar.timegm((2026, 1, 31, 23, 0, 0))]
    budget = Budget(10.0, "reject", clock=lambda: now[0])
    budget.add(6.0)
    assert not budget.exceeded()
    budget.add(4.0)
    assert budget.exceeded()
    now[0] = calendar.timegm((2026, 2, 1, 0, 0, 1))
    assert not budget.exceeded() and budget.spend == 0.0
    budget.add(10.0)
    now[0] = calendar.timegm((2026, 2, 28, 23, 59, 59))
    assert budget.exceeded()
    now[0] = calendar.timegm((2026, 12, 31, 23, 59, 59))  # a new year comes round too
    budget.add(10.0)
    assert budget.exceeded()
    now[0] = calendar.timegm((2027, 1, 1, 0, 0, 0))
    assert not budget.exceeded()
    assert not Budget(None).exceeded()


def test_local_cache_evicts_least_recently_used_and_expired_entries():
    now = [0.0]
    cache = LocalCache(2, ttl=10, clock=lambda: now[0])
    cache.put("a", {"n": 1}, b"1")
    cache.put("b", {"n": 2}, b"2")
    assert cache.get("a").body == b"1"  # a is now the most recent
    cache.put("c", {"n": 3}, b"3")
    assert cache.get("b") is None and cache.get("a") and cache.get("c")
    now[0] = 11
    assert cache.get("a") is None and len(cache) == 1
    disabled = LocalCache(0, ttl=10)
    disabled.put("a", {}, b"")
    assert disabled.get("a") is None


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


async def test_events_are_split_whatever_the_chunk_boundaries():
    events = [e async for e in sse.iter_events(_chunks(b"data: {\"a\"", b":1}\n\ndata: [DO", b"NE]\r\n\r\n"))]
    assert events == [b'data: {"a":1}\n\n', b"data: [DONE]\n\n"]


def chunk(content=None, finish=None, logprob=None, usage=None, role=None) -> bytes:
    delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    lp = {"content": [{"token": content, "logprob": logprob}]} if logprob is not None else None
    choices = [] if usage else [{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}]
    obj = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices}
    if usage:
        obj["usage"] = usage
    return sse.encode(obj)


STREAM = [chunk(role="assistant", content=""), chunk("Hi", logprob=-0.1), chunk(" you", logprob=-0.2, finish="stop"),
          chunk(usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}), sse.DONE]


def test_relay_passes_bytes_untouched_when_nothing_must_change():
    relay = sse.Relay("chat", strip_logprobs=False, drop_usage=False, assembler=None)
    assert [relay.feed(e) for e in STREAM] == STREAM
    assert relay.usage["completion_tokens"] == 2 and relay.done


def test_relay_strips_what_the_router_added_and_assembles_the_answer():
    assembler = sse.Assembler("chat", keep_logprobs=False)
    relay = sse.Relay("chat", strip_logprobs=True, drop_usage=True, assembler=assembler)
    out = [o for o in (relay.feed(e) for e in STREAM) if o is not None]
    assert len(out) == 4 and out[-1] == sse.DONE  # the usage chunk is dropped
    assert all(c["logprobs"] is None for o in out[:-1] for c in orjson.loads(o[6:])["choices"])
    response = assembler.response()
    assert response["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hi you"},
                                    "logprobs": None, "finish_reason": "stop"}]
    assert response["usage"]["total_tokens"] == 5 and response["object"] == "chat.completion"


@pytest.mark.parametrize("kind, response", [
    ("chat", {"id": "r", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello"}, "logprobs": None, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    ("completion", {"id": "r", "created": 1, "model": "m", "choices": [
        {"index": 0, "text": "Hello", "logprobs": None, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
])
def test_a_cached_answer_replays_as_a_stream_that_reassembles_to_it(kind, response):
    events = sse.replay(response, kind, include_usage=True)
    assert events[-1] == sse.DONE
    assembler = sse.Assembler(kind, keep_logprobs=False)
    for event in events[:-1]:
        assembler.add(orjson.loads(sse.event_data(event)))
    rebuilt = assembler.response()
    assert rebuilt["choices"] == response["choices"] and rebuilt["usage"] == response["usage"]


def test_tool_call_streams_are_not_assembled_for_the_cache():
    assembler = sse.Assembler("chat", keep_logprobs=False)
    assembler.add({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]})
    assert not assembler.ok


@pytest.mark.parametrize("text, url", [
    ("small=http://127.0.0.1:8001", "http://127.0.0.1:8001/v1"),
    ("big=http://big:8000/v1/", "http://big:8000/v1"),
])
def test_tier_flags_name_a_url(text, url):
    tier = parse_tier(text)
    assert tier.url == url and tier.served_model == tier.name


@pytest.mark.parametrize("text", ["small", "=http://x", "small=ftp://x", "small=https://x"])
def test_bad_tier_flags_are_refused(text):
    with pytest.raises(SettingsError, match="--tier"):
        parse_tier(text)


def test_flags_build_a_config_and_pick_the_mode(tmp_path):
    one = build_config(tiers=["a=http://x:1"])
    two = build_config(tiers=["a=http://x:1", "b=http://x:2"], cache_url="http://c:1", coalescing=False)
    assert one.routing.mode == "fixed" and two.routing.mode == "cascade"
    assert two.cache.url == "http://c:1" and not two.coalescing.enabled
    path = tmp_path / "router.json"
    path.write_text(two.to_json())
    again = build_config(config_file=str(path), mode="complexity", local_cache_entries=0)
    assert again.routing.mode == "complexity" and again.cache.local_entries == 0 and len(again.tiers) == 2
    with pytest.raises(SettingsError, match="no tiers"):
        build_config()
    with pytest.raises(SettingsError, match="unique"):
        build_config(tiers=["a=http://x:1", "a=http://x:2"])


def test_a_config_file_with_a_tls_tier_is_refused_with_the_field(tmp_path):
    path = tmp_path / "router.yaml"
    path.write_text("tiers: [{name: small, url: 'https://small:8000/v1', servedModel: small}]\n")
    with pytest.raises(SettingsError, match="tiers.0.url"):
        build_config(config_file=str(path))


def test_api_keys_file_maps_keys_to_tenants(tmp_path):
    path = tmp_path / "keys"
    path.write_text("# team keys\nsk-a=team-a\n\nsk-b = team-b\n")
    assert load_api_keys(path) == {"sk-a": "team-a", "sk-b": "team-b"}
    path.write_text("sk-a\n")
    with pytest.raises(SettingsError, match=":1: expected KEY=TENANT"):
        load_api_keys(path)
    with pytest.raises(SettingsError, match="--api-keys"):
        load_api_keys(tmp_path / "missing")


async def test_coalesced_callers_share_one_result_and_one_failure():
    coalescer = Coalescer(0, RouterMetrics("f"))
    calls = []

    async def work():
        calls.append(1)
        await asyncio.sleep(0.05)
        return "answer"

    results = await asyncio.gather(*[coalescer.unary("k", work) for _ in range(5)])
    assert len(calls) == 1 and [r[0] for r in results] == ["answer"] * 5 and sum(r[1] for r in results) == 1

    async def fail():
        await asyncio.sleep(0.05)
        raise ValueError("upstream said no")

    outcomes = await asyncio.gather(*[coalescer.unary("k", fail) for _ in range(3)], return_exceptions=True)
    assert all(isinstance(o, ValueError) for o in outcomes)


async def test_a_shared_call_outlives_a_caller_that_leaves_and_ends_with_the_last():
    coalescer = Coalescer(0, RouterMetrics("f"))
    upstream = {"started": 0, "cancelled": 0}

    async def work():
        upstream["started"] += 1
        try:
            await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            upstream["cancelled"] += 1
            raise
        return "answer"

    leader = asyncio.ensure_future(coalescer.unary("k", work))
    follower = asyncio.ensure_future(coalescer.unary("k", work))
    await asyncio.sleep(0.02)
    leader.cancel()  # the first client hangs up: the second still gets the shared answer
    assert await follower == ("answer", False) and upstream == {"started": 1, "cancelled": 0}
    assert leader.cancelled()

    callers = [asyncio.ensure_future(coalescer.unary("j", work)) for _ in range(2)]
    await asyncio.sleep(0.02)
    for caller in callers:  # everyone hangs up: the upstream call is cancelled
        caller.cancel()
    await asyncio.sleep(0.01)
    assert upstream == {"started": 2, "cancelled": 1}
    assert await coalescer.unary("j", work) == ("answer", True)  # a newcomer starts afresh


async def test_a_shared_stream_fans_out_every_item_to_late_subscribers_too():
    coalescer = Coalescer(0, RouterMetrics("f"))

    async def produce():
        for i in range(3):
            await asyncio.sleep(0.02)
            yield i

    first, led = coalescer.stream("k", produce)
    await asyncio.sleep(0.03)  # one item already out
    second, led2 = coalescer.stream("k", produce)
    got = await asyncio.gather(_collect(first), _collect(second))
    assert led and not led2 and got == [[0, 1, 2], [0, 1, 2]]


async def test_a_stream_abandoned_by_its_last_subscriber_is_not_joined_while_it_winds_down():
    coalescer = Coalescer(0, RouterMetrics("f"))

    async def produce():
        try:
            for i in range(3):
                await asyncio.sleep(0.02)
                yield i
        finally:
            await asyncio.sleep(0.05)  # closing the upstream call takes a moment

    first, _ = coalescer.stream("k", produce)
    async for _ in first:
        break
    await first.aclose()  # the only subscriber leaves: the producer is cancelled
    second, led = coalescer.stream("k", produce)
    assert led and await _collect(second) == [0, 1, 2]


async def _collect(items) -> list:
    return [i async for i in items]


def test_the_config_the_operator_renders_runs_the_router(tmp_path):
    import yaml

    from tokenfleet.commands.render import read_documents
    from tokenfleet.render import render_documents
    from tokenfleet.router.core import RouterCore
    from tokenfleet.router.settings import build_settings

    repo = __import__("pathlib").Path(__file__).resolve().parents[2]
    docs = read_documents([str(repo / "examples")])
    for doc in docs:
        doc.setdefault("metadata", {}).setdefault("namespace", "default")
    maps = [o for o in render_documents(docs) if o["kind"] == "ConfigMap" and "router.json" in o.get("data", {})]
    path = tmp_path / "router.json"
    path.write_text(maps[0]["data"]["router.json"])
    core = RouterCore(build_settings(build_config(config_file=str(path))))
    assert [t.name for t in core.tiers] == ["llama-1b-int4", "llama-8b-fp8", "llama-70b-awq"]
    assert core.config.cache.url and core.coalescer is not None and core.coalescer.window == 0.02
    assert core.tiers[0].endpoint.max_output_tokens == 512 and core.config.default_max_tokens == 512
    assert yaml.safe_load(path.read_text())["routing"]["mode"] == "cascade"


async def test_a_gate_admits_its_concurrency_queues_fifo_and_refuses_beyond_its_queue():
    from tokenfleet.router.upstream import Gate, Saturated

    gate = Gate(concurrency=1, queue=2)
    await gate.enter()
    order: list[str] = []

    async def wait(name: str):
        await gate.enter()
        order.append(name)

    first, second = asyncio.ensure_future(wait("a")), asyncio.ensure_future(wait("b"))
    await asyncio.sleep(0)
    assert gate.waiting == 2
    with pytest.raises(Saturated):
        await gate.enter()
    second.cancel()  # a waiter that gives up frees its queue place
    await asyncio.sleep(0)
    assert gate.waiting == 1
    gate.leave()  # the slot passes to 'a'
    await first
    gate.leave()
    assert order == ["a"] and gate.inflight == 0 and gate.waiting == 0
