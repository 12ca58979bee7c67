"""The router with the real cache service (``tokenfleet cache``): shared hits, and serving on when it dies."""

from __future__ import annotations

import time
import urllib.request

import openai

from tests.integration.router.conftest import calls, router
from tests.support.procs import free_port, running, stop, tokenfleet_cmd


def _metric(base: str, name: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_routers_share_answers_through_the_cache_service_and_serve_on_when_it_dies(logs, engines):
    port = free_port()
    cache_url = f"http://127.0.0.1:{port}"
    messages = [{"role": "user", "content": "Name the largest planet. [difficulty=0.1]"}]
    cache = running(tokenfleet_cmd("cache", "--host", "127.0.0.1", "--port", str(port)),
                    ready_url=cache_url + "/readyz", timeout=120, log_path=logs / "cache.log")
    proc = cache.__enter__()
    try:
        flags = ["--tier", f"small={engines['small']}", "--cache-url", cache_url, "--local-cache-entries", "0"]
        with router(logs, *flags) as first, router(logs, *flags) as second:
            before = calls(engines["small"])
            a = openai.OpenAI(base_url=first + "/v1", api_key="x", max_retries=0)
            b = openai.OpenAI(base_url=second + "/v1", api_key="x", max_retries=0)
            miss = a.chat.completions.with_raw_response.create(model="small", messages=messages, temperature=0)
            _until_stored(cache_url)
            hit = b.chat.completions.with_raw_response.create(model="small", messages=messages, temperature=0)
            assert miss.headers["x-tokenfleet-cache"] == "miss" and hit.headers["x-tokenfleet-cache"] == "exact"
            assert hit.parse().choices[0].message.content == miss.parse().choices[0].message.content
            stream = b.chat.completions.create(model="small", messages=messages, temperature=0, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == \
                miss.parse().choices[0].message.content
            assert calls(engines["small"]) - before == 1

            stop(proc)  # the cache service dies: answers keep coming from the tier
            after = calls(engines["small"])
            for _ in range(3):
                answer = b.chat.completions.with_raw_response.create(model="small", messages=messages, temperature=0)
                assert answer.headers["x-tokenfleet-cache"] == "miss" and answer.parse().choices[0].message.content
            assert calls(engines["small"]) - after == 3
            assert _metric(second, 'tokenfleet_router_cache_lookups_total{fleet="tokenfleet",result="error"}') >= 1
    finally:
        cache.__exit__(None, None, None)


def _until_stored(cache_url: str) -> None:
    """The router stores in the background: wait until the cache service counts the entry."""
    deadline = time.monotonic() + 10
    while _metric(cache_url, "tokenfleet_cache_stores_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
