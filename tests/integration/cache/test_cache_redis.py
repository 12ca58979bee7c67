"""The cache service with a real redis-server: restarts keep entries, replicas share them, Redis loss fails open."""

from __future__ import annotations

import redis

from tests.integration.cache.conftest import cache_service, eventually, lookup, redis_server, store


def test_a_restart_with_redis_keeps_exact_and_semantic_entries(logs):
    with redis_server(logs / "redis") as url:
        with cache_service(logs, "--redis", url) as cache:
            assert store(cache, "How do I reverse a list in Python?", "reversed()") == {"stored": True}
            assert store(cache, "What is the capital of France?", "Paris", tenant="other") == {"stored": True}
            assert eventually(lambda: cache.get("/v1/stats").json()["store"]["connected"])
        keys = redis.Redis.from_url(url).keys("tokenfleet:cache:e:*")
        assert len(keys) == 2
        ttl = redis.Redis.from_url(url).pttl(keys[0])
        assert 0 < ttl <= 24 * 3600 * 1000  # Redis drops an entry with its longest TTL
        with cache_service(logs, "--redis", url) as restarted:
            assert restarted.get("/v1/stats").json()["entries"] == 2  # ready: every entry read
            assert lookup(restarted, "How do I reverse a list in Python?")["kind"] == "exact"
            # vectors follow the entries into the index, in the background
            hit = eventually(lambda: lookup(restarted, "How can I reverse a Python list?")["hit"] and
                             lookup(restarted, "How can I reverse a Python list?"))
            assert hit["kind"] == "semantic" and hit["response"]["choices"][0]["message"]["content"] == "reversed()"
            assert lookup(restarted, "What is the capital of France?") == {"hit": False}  # tenant "other"'s
            assert lookup(restarted, "What is the capital of France?", tenant="other")["kind"] == "exact"


def test_replicas_share_entries_and_invalidations_through_redis(logs):
    with redis_server(logs / "redis") as url, cache_service(logs, "--redis", url) as a, \
            cache_service(logs, "--redis", url) as b:
        store(a, "How do I reverse a list in Python?", "reversed()")
        hit = eventually(lambda: lookup(b, "How can I reverse a Python list?")["hit"])
        assert hit, "replica b never saw replica a's entry"
        assert lookup(b, "How do I reverse a list in Python?")["kind"] == "exact"
        assert b.post("/v1/invalidate", json={"tenant": "acme"}).json()["removed"] >= 1
        assert eventually(lambda: lookup(a, "How do I reverse a list in Python?") == {"hit": False})


def test_redis_going_down_never_fails_a_lookup_or_a_store_and_is_counted(logs):
    with cache_service(logs, "--redis", "redis://127.0.0.1:1/0") as never_up:  # nothing listens on port 1
        assert never_up.get("/readyz").status_code == 200
        assert store(never_up, "What is the capital of France?", "Paris") == {"stored": True}
        assert lookup(never_up, "What is the capital of France?")["kind"] == "exact"
    with redis_server(logs / "redis") as url, cache_service(logs, "--redis", url) as cache:
        store(cache, "What is the capital of France?", "Paris")
        redis.Redis.from_url(url).shutdown(nosave=True)
        assert lookup(cache, "What is the capital of France?")["kind"] == "exact"
        assert lookup(cache, "What's the capital city of France?")["kind"] == "semantic"
        assert store(cache, "How do I reverse a list in Python?", "reversed()") == {"stored": True}
        assert lookup(cache, "How do I reverse a list in Python?")["kind"] == "exact"
        errors = eventually(lambda: cache.get("/v1/stats").json()["store"]["errors"])
        assert errors >= 1
        assert "tokenfleet_cache_store_errors_total" in cache.get("/metrics").text
