"""The cache service's HTTP API in process, with the real MiniLM model: hits, near-misses, isolation, TTL, errors."""

import asyncio
import contextlib
import hashlib
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from tokenfleet import cachekey
from tokenfleet.api.v1alpha1 import CachePolicySpec
from tokenfleet.cache.app import create_app
from tokenfleet.cache.batching import MicroBatcher
from tokenfleet.cache.embed import Embedder
from tokenfleet.cache.settings import CacheSettings


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@contextlib.asynccontextmanager
async def serve(embedder, policy: dict | None = None, **kw):
    settings = CacheSettings(policy=CachePolicySpec.model_validate(policy or {}), **kw.pop("settings", {}))
    app = create_app(settings, embedder=embedder, **kw)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cache") as client:
            client.service = app.state.service
            yield client


def chat(text: str, system: str | None = None, **params) -> dict:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return {"messages": messages, "temperature": 0, **params}


def answer(content: str, finish: str = "stop") -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}


async def store(client, request, content="A", tenant="acme", model="m"):
    r = await client.post("/v1/store", json={"tenant": tenant, "model": model, "request": request,
                                             "response": answer(content)})
    assert r.status_code == 200 and r.json() == {"stored": True}, r.text


async def lookup(client, request, tenant="acme", model="m", **extra):
    r = await client.post("/v1/lookup", json={"tenant": tenant, "model": model, "request": request, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def counter(client, layer, result) -> float:
    return client.service.metrics.lookups.labels(layer, result)._value.get()


async def test_the_same_request_is_an_exact_hit_and_fields_that_do_not_change_the_output_are_ignored(embedder):
    async with serve(embedder) as client:
        await store(client, chat("What is the capital of France?"), "Paris")
        hit = await lookup(client, chat("What is the capital of France?", stream=False, user="u1"))
        assert hit == {"hit": True, "kind": "exact", "similarity": None, "response": answer("Paris")}
        miss = await lookup(client, chat("What is the capital of France?", max_tokens=5), semantic=False)
        assert miss == {"hit": False}


async def test_a_rephrasing_is_a_semantic_hit_with_its_similarity(embedder):
    async with serve(embedder) as client:
        await store(client, chat("How do I reverse a list in Python?"), "reversed()")
        hit = await lookup(client, chat("How can I reverse a Python list?"))
        assert hit["hit"] and hit["kind"] == "semantic" and hit["response"] == answer("reversed()")
        assert 0.92 <= hit["similarity"] <= 1.0
        assert await lookup(client, chat("How can I reverse a Python list?"), semantic=False) == {"hit": False}


NEAR_MISSES = [
    ("How many calories are in 2 bananas?", "How many calories are in 3 bananas?"),  # number
    ("What is the population of Tokyo?", "What is the population of Osaka?"),  # entity
    ("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?"),  # negation
    ("Book a flight from Paris to London", "Book a flight from London to Paris"),  # direction
    ("Convert 100 dollars to euros", "Convert 100 euros to dollars"),  # direction
]


@pytest.mark.parametrize(("stored", "query"), NEAR_MISSES)
async def test_a_near_miss_is_refused_by_the_guard_although_its_cosine_passes(embedder, stored, query):
    policy = {"semantic": {"similarityThreshold": 0.8}}
    async with serve(embedder, policy) as client:
        await store(client, chat(stored))
        assert await lookup(client, chat(query)) == {"hit": False}
        assert counter(client, "semantic", "guard_rejected") == 1
    async with serve(embedder, {"semantic": {"similarityThreshold": 0.8, "guard": False}}) as client:
        await store(client, chat(stored))
        assert (await lookup(client, chat(query)))["kind"] == "semantic"  # the cosine alone would answer it


async def test_no_entry_is_ever_visible_to_another_tenant_however_the_name_is_crafted(embedder):
    text = "What is the capital of France?"
    async with serve(embedder, {"semantic": {"similarityThreshold": 0.5}}) as client:
        await store(client, chat(text), "secret", tenant="acme")
        for other in ["acme ", " acme", "ACME", "acme\u200b", "acme/m", "acme:m", '{"tenant":"acme"}', "acmé"]:
            assert await lookup(client, chat(text), tenant=other) == {"hit": False}, other
            assert await lookup(client, chat("What's the capital of France?"), tenant=other) == {"hit": False}
        # the same text in another model, with other sampling parameters or another context: no hit either
        assert await lookup(client, chat(text), model="m2") == {"hit": False}
        assert await lookup(client, chat(text, temperature=0.7)) == {"hit": False}
        assert await lookup(client, chat(text, system="Answer in French.")) == {"hit": False}
        assert (await lookup(client, chat(text)))["response"] == answer("secret")


def _colliding_keys():
    """Key functions that ignore tenant and model: every tenant's entries share one key and one partition."""
    def exact_key(tenant, model, body):
        return hashlib.sha256(repr(body.get("messages")).encode()).hexdigest()

    return SimpleNamespace(exact_key=exact_key, partition_key=lambda tenant, model, body: "one-partition",
                           semantic_text=cachekey.semantic_text)


async def test_even_colliding_keys_and_partitions_never_cross_tenants(embedder):
    async with serve(embedder, keys=_colliding_keys()) as client:
        await store(client, chat("What is the capital of France?"), "for acme", tenant="acme")
        assert await lookup(client, chat("What is the capital of France?"), tenant="mallory") == {"hit": False}
        assert await lookup(client, chat("What's the capital city of France?"), tenant="mallory") == {"hit": False}
        # the collision is real: the same tenant finds its entry through both layers
        assert (await lookup(client, chat("What is the capital of France?")))["kind"] == "exact"
        assert (await lookup(client, chat("What's the capital city of France?")))["kind"] == "semantic"
        # a colliding store from another tenant replaces nothing that acme can then read
        await store(client, chat("What is the capital of France?"), "for mallory", tenant="mallory")
        hit = await lookup(client, chat("What is the capital of France?"), tenant="acme")
        assert hit == {"hit": False} or hit["response"] == answer("for acme")


async def test_each_layer_holds_an_entry_for_its_ttl(embedder):
    clock = Clock()
    policy = {"exact": {"ttl": "10s"}, "semantic": {"ttl": "60s"}}
    async with serve(embedder, policy, clock=clock) as client:
        await store(client, chat("How do I reverse a list in Python?"))
        clock.now += 11
        assert (await lookup(client, chat("How do I reverse a list in Python?")))["kind"] == "semantic"
        clock.now += 50
        assert await lookup(client, chat("How do I reverse a list in Python?")) == {"hit": False}
        assert client.service.core.sweep() == 1
        assert (await client.get("/v1/stats")).json()["entries"] == 0


async def test_max_entries_holds_and_the_oldest_entry_goes_first(embedder):
    async with serve(embedder, {"semantic": {"maxEntries": 2}}) as client:
        for i, city in enumerate(["Paris", "Berlin", "Madrid"]):
            await store(client, chat(f"Tell me about {city}"), city)
        assert await lookup(client, chat("Tell me about Paris")) == {"hit": False}
        assert (await lookup(client, chat("Tell me about Madrid")))["response"] == answer("Madrid")
        stats = (await client.get("/v1/stats")).json()
        assert stats["entries"] == 2 and stats["semantic"] == 2
        assert client.service.metrics.evictions.labels("capacity")._value.get() == 1


@pytest.mark.parametrize(("response", "reason"), [
    (answer("cut off", finish="length"), "finish_reason_length"),
    (answer("blocked", finish="content_filter"), "finish_reason_content_filter"),
    ({"error": {"message": "overloaded", "type": "server_error"}}, "error_body"),
    ({"id": "x", "choices": []}, "no_choices"),
    ({"choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * (2 << 20)},
                   "finish_reason": "stop"}]}, "too_large"),
])
async def test_responses_that_must_not_be_cached_are_refused_with_a_reason(embedder, response, reason):
    async with serve(embedder) as client:
        r = await client.post("/v1/store", json={"tenant": "a", "model": "m", "request": chat("hi"),
                                                 "response": response})
        assert r.json() == {"stored": False, "reason": reason}
        assert await lookup(client, chat("hi"), tenant="a") == {"hit": False}


@pytest.mark.parametrize(("path", "body", "code"), [
    ("/v1/lookup", b"{not json", "invalid_json"),
    ("/v1/lookup", b"[1, 2]", "invalid_body"),
    ("/v1/lookup", {"model": "m", "request": chat("x")}, "invalid_tenant"),
    ("/v1/lookup", {"tenant": "t" * 300, "model": "m", "request": chat("x")}, "invalid_tenant"),
    ("/v1/lookup", {"tenant": "t", "request": chat("x")}, "invalid_model"),
    ("/v1/lookup", {"tenant": "t", "model": "m", "request": "hello"}, "invalid_request"),
    ("/v1/lookup", {"tenant": "t", "model": "m", "request": {"messages": []}}, "invalid_messages"),
    ("/v1/lookup", {"tenant": "t", "model": "m", "request": {"messages": [{"content": "x"}]}}, "invalid_messages"),
    ("/v1/lookup", {"tenant": "t", "model": "m", "request": {"temperature": 0}}, "invalid_request"),
    ("/v1/lookup", {"tenant": "t", "model": "m", "request": chat("x"), "semantic": "yes"}, "invalid_semantic"),
    ("/v1/store", {"tenant": "t", "model": "m", "request": chat("x")}, "invalid_response"),
    ("/v1/invalidate", {"tenant": 5}, "invalid_tenant"),
])
async def test_bad_input_gets_a_400_with_an_openai_style_error(embedder, path, body, code):
    async with serve(embedder) as client:
        kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
        r = await client.post(path, **kwargs)
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["code"] == code and error["type"] == "invalid_request_error" and error["message"]


async def test_invalidate_removes_a_tenant_a_model_or_everything(embedder):
    async with serve(embedder) as client:
        for tenant in ("a", "b"):
            for model in ("m1", "m2"):
                await store(client, chat("What is the capital of France?"), tenant=tenant, model=model)
        assert (await client.post("/v1/invalidate", json={"tenant": "a"})).json() == {"removed": 2}
        assert await lookup(client, chat("What is the capital of France?"), tenant="a", model="m1") == {"hit": False}
        assert (await client.post("/v1/invalidate", json={"model": "m2"})).json() == {"removed": 1}
        assert (await lookup(client, chat("What is the capital of France?"), tenant="b", model="m1"))["hit"]
        assert (await client.post("/v1/invalidate", content=b"")).json() == {"removed": 1}


async def test_concurrent_lookups_share_embedding_calls(embedder):
    questions = [f"How do I convert {n} kilometres to miles?" for n in range(24)]
    async with serve(embedder) as client:
        await store(client, chat("How do I convert 5 kilometres to miles?"))
        calls, texts = embedder.calls, embedder.texts
        results = await asyncio.gather(*(lookup(client, chat(q)) for q in questions))
        assert sum(r["hit"] for r in results) == 1  # only "5": every other number is refused by the guard
        assert embedder.texts - texts == 23  # the exact hit needs no embedding
        assert embedder.calls - calls <= 4
        assert client.service.metrics.batch._sum.get() >= 23


async def test_the_batcher_embeds_everything_queued_together_in_one_call():
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return np.ones((len(texts), 3), dtype=np.float32)

    batcher = MicroBatcher(embed, max_batch=8)
    batcher.start()
    vectors = await asyncio.gather(*(batcher.embed(str(i)) for i in range(10)))
    await batcher.close()
    assert len(vectors) == 10 and [len(c) for c in calls] == [8, 2]


async def test_stats_and_metrics_use_the_documented_names(embedder):
    async with serve(embedder) as client:
        await store(client, chat("hello there"))
        await lookup(client, chat("hello there"))
        text = (await client.get("/metrics")).text
        for name in ("tokenfleet_cache_lookups_total", "tokenfleet_cache_stores_total",
                     "tokenfleet_cache_evictions_total", "tokenfleet_cache_entries",
                     "tokenfleet_cache_lookup_duration_seconds_bucket", "tokenfleet_cache_embedding_batch_size_bucket",
                     "tokenfleet_cache_store_errors_total"):
            assert name in text
        assert 'tokenfleet_cache_lookups_total{layer="exact",result="hit"} 1.0' in text
        stats = (await client.get("/v1/stats")).json()
        assert stats["entries"] == 1 and stats["store"]["type"] == "memory" and stats["ready"]
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        assert (await client.get("/nope")).json()["error"]["code"] == "not_found"


async def test_a_model_that_cannot_load_keeps_readyz_false_with_the_reason_and_exact_lookups_answer(tmp_path):
    async with serve(None, settings={"model_dir": tmp_path}) as client:
        for _ in range(100):
            if client.service.model_error:
                break
            await asyncio.sleep(0.02)
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "tokenizer.json" in ready.json()["reason"]
        assert (await client.get("/healthz")).status_code == 200
        assert await lookup(client, chat("anything")) == {"hit": False}
        r = await client.post("/v1/store", json={"tenant": "acme", "model": "m", "request": chat("x"),
                                                 "response": answer("y")})
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"


async def test_legacy_completions_with_a_string_prompt_are_cached_too(embedder):
    async with serve(embedder) as client:
        prompt = {"prompt": "Write a haiku about autumn leaves", "temperature": 0}
        await store(client, prompt, "leaves fall")
        assert (await lookup(client, prompt))["kind"] == "exact"
        hit = await lookup(client, {"prompt": "Write a haiku about the leaves of autumn", "temperature": 0})
        assert hit["kind"] == "semantic"


async def test_lookups_beyond_the_embedding_queue_bound_are_shed_as_quick_misses(embedder):
    questions = [f"How do I convert {n} kilometres to miles?" for n in range(24)]
    async with serve(embedder, settings={"queue_max": 1}) as client:
        await store(client, chat("How do I convert 5 kilometres to miles?"))
        texts = embedder.texts
        results = await asyncio.gather(*(lookup(client, chat(q)) for q in questions))
        assert sum(r["hit"] for r in results) == 1  # the exact hit needs no embedding
        assert embedder.texts - texts == 1  # one text queued; the other 22 were shed without running the model
        assert counter(client, "semantic", "shed") == 22
        await store(client, chat("What is the capital of France?"))  # nothing queued now: embedded as usual
        assert (await lookup(client, chat("What's the capital city of France?")))["kind"] == "semantic"


async def test_a_large_invalidation_lets_lookups_run_between_its_steps(embedder):
    async with serve(embedder) as client:
        core = client.service.core
        core.put_many([core.new_entry(f"k{i}", "big", "m", b"{}", None, None) for i in range(60_000)], [None] * 60_000)
        await store(client, chat("What is the capital of France?"), "Paris", tenant="small")
        invalidation = asyncio.ensure_future(client.post("/v1/invalidate", json={"tenant": "big"}))
        while len(core.entries) == 60_001:
            await asyncio.sleep(0)
        assert not invalidation.done() and 1 < len(core.entries) < 60_001  # part way through...
        hit = await lookup(client, chat("What is the capital of France?"), tenant="small")
        assert hit["response"] == answer("Paris") and not invalidation.done()  # ...a lookup was answered
        assert (await invalidation).json() == {"removed": 60_000}
