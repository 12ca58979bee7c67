"""Replicas and Redis, in process: missed events, lost events, bad data, and a restart's two passes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import numpy as np
import redis.asyncio as aioredis

from tests.integration.cache.conftest import answer, chat, redis_server
from tests.support.procs import free_port
from tokenfleet.api.v1alpha1 import CachePolicySpec
from tokenfleet.cache.embed import DIM, Embedder
from tokenfleet.cache.service import CacheService
from tokenfleet.cache.settings import CacheSettings
from tokenfleet.cache.store import Record, RedisStore
from tokenfleet.demo.proxy import ServiceProxy

EXACT_ONLY = CachePolicySpec.model_validate({"semantic": {"enabled": False}})


@contextlib.asynccontextmanager
async def replica(url: str):
    service = CacheService(CacheSettings(policy=EXACT_ONLY, redis_url=url))
    await service.start()
    try:
        await asyncio.wait_for(service.store.synced.wait(), 10)
        yield service
    finally:
        await service.close()


@contextlib.asynccontextmanager
async def redis_and_a_cuttable_path(tmp_path):
    """A real redis-server, its URL, and a URL through a proxy that the test can cut and restore."""
    with redis_server(tmp_path / "redis") as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        proxy = ServiceProxy("redis", free_port())
        await proxy.set_endpoints([port])
        try:
            yield url, f"redis://127.0.0.1:{proxy.port}/0", proxy, port
        finally:
            await proxy.close()


async def until(check, timeout: float = 8.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await check()) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    return value


async def hit(service: CacheService, text: str, tenant: str = "acme") -> bool:
    return await service.lookup(tenant, "m", chat(text)) is not None


async def test_a_replica_cut_off_from_redis_applies_the_invalidations_it_missed_once_back(tmp_path):
    async with redis_and_a_cuttable_path(tmp_path) as (url, via_proxy, proxy, port), \
            replica(via_proxy) as a, replica(url) as b:
        await b.put("acme", "m", chat("What is the capital of France?"), answer("Paris"))
        assert await until(lambda: hit(a, "What is the capital of France?"))
        await proxy.close()  # a loses Redis
        await a.put("other", "m", chat("Local while cut off"), answer("x"))
        assert await b.invalidate("acme", None) == 1
        assert await hit(a, "What is the capital of France?")  # a fails open meanwhile
        await proxy.set_endpoints([port])
        assert await until(lambda: _not(hit(a, "What is the capital of France?")))
        assert await hit(a, "Local while cut off", tenant="other")  # resumed from the log: nothing rebuilt


async def _not(awaitable) -> bool:
    return not await awaitable


async def test_a_replica_that_missed_more_events_than_the_log_keeps_drops_its_entries_and_rebuilds(tmp_path):
    async with redis_and_a_cuttable_path(tmp_path) as (url, via_proxy, proxy, port), \
            replica(via_proxy) as a, replica(url) as b:
        await b.put("acme", "m", chat("What is the capital of France?"), answer("Paris"))
        await b.put("acme", "m", chat("How do I reverse a list in Python?"), answer("reversed()"))
        assert await until(lambda: hit(a, "How do I reverse a list in Python?"))
        await proxy.close()
        await a.put("other", "m", chat("Local while cut off"), answer("x"))
        await b.store.redis.unlink(b.store.entry_key("acme", "m", b.keys.exact_key("acme", "m", chat(
            "What is the capital of France?"))))  # gone from Redis without an event a could read...
        await b.store.redis.xadd(b.store.log_key, {"op": "noop"}, maxlen=1, approximate=False)  # ...log trimmed
        await proxy.set_endpoints([port])
        assert await until(lambda: _not(hit(a, "What is the capital of France?")))
        assert not await hit(a, "Local while cut off", tenant="other")  # dropped: Redis never had it
        assert await hit(a, "How do I reverse a list in Python?")  # reloaded from Redis


async def test_malformed_entries_and_events_in_redis_are_skipped_and_counted(tmp_path):
    with redis_server(tmp_path / "redis") as url:
        async with replica(url) as writer:
            await writer.put("acme", "m", chat("What is the capital of France?"), answer("Paris"))
            raw = aioredis.from_url(url)
            await raw.hset(writer.store.prefix + "e:bad:bad:k1", mapping={"meta": b"{not json", "resp": b"{}"})
            await raw.hset(writer.store.prefix + "e:bad:bad:k2", mapping={"meta": json.dumps({"key": "k2"})})
            async with replica(url) as reader:
                assert await hit(reader, "What is the capital of France?")
                assert reader.stats()["store"]["errors"] == 2 and reader.stats()["entries"] == 1
                await raw.xadd(writer.store.log_key, {"op": "invalidate", "tenant": "{broken"})
                await writer.put("acme", "m", chat("Later"), answer("y"))
                assert await until(lambda: hit(reader, "Later"))  # the follower went past the bad event
                assert reader.stats()["store"]["errors"] == 3
            await raw.aclose()


async def test_a_restart_reads_every_entry_before_ready_and_indexes_their_vectors_afterwards(tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((2500, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with redis_server(tmp_path / "redis") as url:
        writer, now = RedisStore(url, max_queued=10_000), time.time()
        await asyncio.gather(*(writer.save(Record(
            key=f"k{i}", tenant="acme", model="m", partition="p", text=f"question {i}", created=now,
            exact_expires=now + 600, semantic_expires=now + 600, response=b"{}", vector=vectors[i]))
            for i in range(2500)))
        await writer.close()
        service = CacheService(CacheSettings(redis_url=url), embedder=Embedder())
        await service.start()
        try:
            await asyncio.wait_for(service.store.synced.wait(), 20)
            assert service.ready and service.core.counts()["entries"] == 2500  # the exact layer is whole
            assert await until(lambda: _settled(service), timeout=60)
            assert service.vectors_pending == 0
            assert service.core.partitions["p"].hnsw is not None  # merged in a worker thread
            found = service.core.search("acme", "m", "p", vectors[1234], None)
            assert found.entry.key == "k1234" and found.similarity > 0.999
        finally:
            await service.close()


async def _settled(service: CacheService) -> bool:
    return service.core.counts()["semantic"] == 2500 and not service.core.index_stats()["busy_partitions"] \
        and not service.core.next_job_pending()
