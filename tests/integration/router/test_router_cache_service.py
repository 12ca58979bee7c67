"""The router with the real cache service (``tokenfleet cache``): exact and semantic hits, tenants, serving on when it dies."""

from __future__ import annotations

import json
import time
import urllib.request

import openai

from tests.support.engines import cache_service, calls, metric_values, router

SERVICE_LOOKUP_ERRORS = 'tokenfleet_router_cache_lookups_total{fleet="tokenfleet",result="error"}'
STORES = 'tokenfleet_router_cache_stores_total{{fleet="tokenfleet",result="{}"}}'


def _client(base: str, key: str = "x") -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def _ask(client: openai.OpenAI, question: str, **extra):
    messages = [{"role": "user", "content": question}]
    return client.chat.completions.with_raw_response.create(model="small", messages=messages, temperature=0, **extra)


def _until_stored(cache_url: str, entries: int = 1) -> None:
    """The router stores in the background: wait until the cache service counts the entries."""
    deadline = time.monotonic() + 10
    while metric_values(cache_url).get("tokenfleet_cache_stores_total", 0) < entries and time.monotonic() < deadline:
        time.sleep(0.02)


def test_routers_share_answers_through_the_cache_service_and_serve_on_when_it_dies(logs, engines):
    question = "Name the largest planet. [difficulty=0.1]"
    with cache_service(logs) as (cache_url, proc):
        flags = ["--tier", f"small={engines['small']}", "--cache-url", cache_url, "--local-cache-entries", "0"]
        with router(logs, *flags) as first, router(logs, *flags) as second:
            before = calls(engines["small"])
            a, b = _client(first), _client(second)
            miss = _ask(a, question)
            _until_stored(cache_url)
            hit = _ask(b, question)
            assert miss.headers["x-tokenfleet-cache"] == "miss" and hit.headers["x-tokenfleet-cache"] == "exact"
            assert hit.parse().choices[0].message.content == miss.parse().choices[0].message.content
            stream = b.chat.completions.create(model="small", messages=[{"role": "user", "content": question}],
                                               temperature=0, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == \
                miss.parse().choices[0].message.content
            assert calls(engines["small"]) - before == 1

            proc.terminate()  # the cache service dies: answers keep coming from the tier
            proc.wait(10)
            after = calls(engines["small"])
            for _ in range(3):
                answer = _ask(b, question)
                assert answer.headers["x-tokenfleet-cache"] == "miss" and answer.parse().choices[0].message.content
            assert calls(engines["small"]) - after == 3
            assert metric_values(second)[SERVICE_LOOKUP_ERRORS] >= 1
            # the stores of those misses fail or are skipped while the breaker is open: counted, never raised
            lost = metric_values(second)
            assert lost.get(STORES.format("error"), 0) + lost.get(STORES.format("skipped"), 0) >= 1
            assert metric_values(first)[STORES.format("ok")] >= 1  # the first miss was stored


def test_a_rephrased_question_is_answered_from_the_semantic_layer_of_its_own_tenant_only(logs, engines, keys_file):
    with cache_service(logs) as (cache_url, _), \
            router(logs, "--tier", f"small={engines['small']}", "--cache-url", cache_url, "--local-cache-entries", "0",
                   "--api-keys", str(keys_file)) as base:
        alpha, beta = _client(base, "sk-alpha"), _client(base, "sk-beta")
        first = _ask(alpha, "How do I reverse a list in Python?")
        _until_stored(cache_url)
        before = calls(engines["small"])
        rephrased = _ask(alpha, "How can I reverse a Python list?")
        streamed = alpha.chat.completions.with_raw_response.create(
            model="small", messages=[{"role": "user", "content": "How can I reverse a list in Python?"}],
            temperature=0, stream=True)
        streamed_text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
        assert calls(engines["small"]) == before  # both answered by the cache service
        other_tenant = _ask(beta, "How can I reverse a Python list?")
        assert calls(engines["small"]) == before + 1
    answer = first.parse().choices[0].message.content
    assert first.headers["x-tokenfleet-cache"] == "miss" and answer
    assert rephrased.headers["x-tokenfleet-cache"] == "semantic" and rephrased.headers["x-tokenfleet-tier"] == "none"
    assert rephrased.parse().choices[0].message.content == answer
    assert streamed.headers["x-tokenfleet-cache"] == "semantic" and streamed_text == answer
    assert other_tenant.headers["x-tokenfleet-cache"] == "miss"


def test_an_invalidation_reaches_the_routers_in_process_cache(logs, engines):
    """The router's LRU answers repeats without asking the cache service; POST /v1/invalidate must still
    stop it serving the invalidated answer (it polls the service's invalidations every 2 s)."""
    question = "Which planet has the most moons? [difficulty=0.1]"
    with cache_service(logs) as (cache_url, _), \
            router(logs, "--tier", f"small={engines['small']}", "--cache-url", cache_url) as base:
        client = _client(base)
        assert _ask(client, question).headers["x-tokenfleet-cache"] == "miss"
        _until_stored(cache_url)
        assert _ask(client, question).headers["x-tokenfleet-cache"] == "local"
        request = urllib.request.Request(cache_url + "/v1/invalidate", data=json.dumps({"model": "small"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert json.loads(resp.read())["removed"] == 1
        dropped = 'tokenfleet_router_local_cache_invalidated_total{fleet="tokenfleet"}'
        deadline = time.monotonic() + 10
        while metric_values(base).get(dropped, 0) < 1:
            assert time.monotonic() < deadline, "the router never dropped the invalidated answer"
            time.sleep(0.1)
        before = calls(engines["small"])
        assert _ask(client, question).headers["x-tokenfleet-cache"] == "miss"
        assert calls(engines["small"]) == before + 1
        polls = 'tokenfleet_router_cache_invalidation_polls_total{fleet="tokenfleet",result="ok"}'
        assert metric_values(base)[polls] >= 1
