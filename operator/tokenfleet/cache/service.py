"""What the cache service does for each request: keys, exact layer, embedding, semantic layer, store, invalidate."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from tokenfleet import cachekey
from tokenfleet.cache.batching import Busy, MicroBatcher
from tokenfleet.cache.core import CacheCore, Entry
from tokenfleet.cache.embed import DIM
from tokenfleet.cache.invalidations import InvalidationLog
from tokenfleet.cache.metrics import CacheMetrics
from tokenfleet.cache.settings import CacheSettings
from tokenfleet.cache.store import MemoryStore, Record, RedisStore

log = logging.getLogger("tokenfleet.cache")
# The key functions, shared with the router; a test may pass colliding ones to prove isolation holds anyway.
DEFAULT_KEYS = SimpleNamespace(exact_key=cachekey.exact_key, partition_key=cachekey.partition_key,
                               semantic_text=cachekey.semantic_text)
UNCACHEABLE_FINISH = {"length", "content_filter", None}
VECTOR_BATCH = 2000  # vectors fetched from Redis at a time after a rebuild, as fast as the index takes them


@dataclass(frozen=True)
class Hit:
    """A lookup's answer: the layer that found it, the entry, and the similarity (semantic only)."""

    kind: str
    entry: Entry
    similarity: float | None = None


def refusal(response) -> str | None:
    """Why a response must not be cached (None when it may be)."""
    if not isinstance(response, dict):
        return "not_an_object"
    if "error" in response:
        return "error_body"
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        return "no_choices"
    for choice in choices:
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        if finish in UNCACHEABLE_FINISH:
            return f"finish_reason_{finish or 'missing'}"
    return None


class CacheService:
    """State shared by the routes: settings, core, embedder, batcher, backing store, metrics."""

    def __init__(self, settings: CacheSettings, embedder=None, keys=DEFAULT_KEYS, clock=time.time,
                 metrics: CacheMetrics | None = None):
        self.settings = settings
        self.keys = keys
        self.metrics = metrics or CacheMetrics()
        self.core = CacheCore(settings.cache_config(), clock=clock, on_evict=self.metrics.evicted)
        self.store = (RedisStore(settings.redis_url, settings.redis_prefix, on_error=self.metrics.store_errors.inc)
                      if settings.redis_url else MemoryStore())
        self.embedder = embedder
        self.batcher: MicroBatcher | None = None
        self.model_error: str | None = None
        self.vectors_pending = 0  # entries rebuilt from Redis whose vectors are still to be fetched
        self._tasks: set[asyncio.Task] = set()
        self._index_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index")
        self._indexing = False
        self._wake = asyncio.Event()  # set when vectors were added: the indexer looks at once
        self._loader: asyncio.Task | None = None
        self.invalidations = InvalidationLog()  # what routers follow to drop their in-process copies

    # ------------------------------------------------------------------ life cycle

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Load the model (in the background), start sweeping and indexing, rebuild from and follow the store."""
        self.metrics.watch_entries(self.core.counts)
        if self.embedder is not None:
            self._start_batcher()
        elif self.core.config.semantic_enabled:
            self._spawn(self._load_model())
        self._spawn(self._sweeper())
        self._spawn(self._indexer())
        await self.store.start(self)

    async def _load_model(self) -> None:
        from tokenfleet.cache.embed import Embedder

        started = time.monotonic()
        try:
            self.embedder = await asyncio.to_thread(Embedder, self.settings.model_dir, self.settings.embed_threads,
                                                    self.settings.precision)
        except Exception as err:  # noqa: BLE001 - reported by /readyz, never a crash loop
            self.model_error = f"{type(err).__name__}: {err}"
            log.error("embedding model failed to load: %s", self.model_error)
            return
        self._start_batcher()
        log.info("embedding model loaded in %.1fs (%s)", time.monotonic() - started, self.settings.precision)

    def _start_batcher(self) -> None:
        self.batcher = MicroBatcher(self.embedder.embed, self.settings.batch_max, self.settings.batch_window_ms,
                                    on_batch=self.metrics.batch.observe, max_queue=self.settings.queue_max)
        self.batcher.start()

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_seconds)
            self.core.sweep()

    async def _indexer(self) -> None:
        """Index upkeep off the event loop: merges of flat parts into HNSW, shrinks of mostly deleted ones."""
        loop = asyncio.get_running_loop()
        while True:
            job = self.core.next_job()
            if job is None:
                self._indexing = False
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.05)  # deletions only mark, hence the poll
                continue
            self._indexing = True
            try:
                await loop.run_in_executor(self._index_pool, job.run, self.settings.index_threads)
            finally:
                self.core.finish_job(job)
            if job.error is not None:
                log.error("index %s of a partition failed: %r", job.kind, job.error)
                await asyncio.sleep(1.0)

    async def index_settled(self) -> None:
        """Wait until no index work is pending (tests, and the vector loader's pace)."""
        while self._indexing or self.core.next_job_pending():
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.batcher is not None:
            await self.batcher.close()
        await self.store.close()
        self._index_pool.shutdown(wait=False, cancel_futures=True)  # hnswlib cannot be stopped mid-insert

    @property
    def ready(self) -> bool:
        """The exact layer is complete: the store's entries were read (when there is a store to read).

        With the semantic layer on, the embedding model must be loaded too; vectors read from Redis
        may still be joining the index (``vectors_pending``): until then they are exact-only.
        """
        synced = getattr(self.store, "synced", None)
        model = self.batcher is not None or not self.core.config.semantic_enabled
        return model and (synced is None or synced.is_set())

    # ------------------------------------------------------------------ requests

    async def lookup(self, tenant: str, model: str, request: dict, semantic: bool = True) -> Hit | None:
        """Exact layer, then (if asked and possible) the semantic layer."""
        started = time.perf_counter()
        try:
            if self.core.config.exact_enabled:
                entry = self.core.get_exact(self.keys.exact_key(tenant, model, request), tenant, model)
                self.metrics.lookups.labels("exact", "hit" if entry else "miss").inc()
                if entry is not None:
                    return Hit("exact", entry)
            if semantic and self.core.config.semantic_enabled and self.batcher is not None:
                return await self._semantic(tenant, model, request)
            return None
        finally:
            self.metrics.duration.observe(time.perf_counter() - started)

    async def _semantic(self, tenant: str, model: str, request: dict) -> Hit | None:
        text = self.keys.semantic_text(request)
        if not text or not text.strip():
            return None
        partition = self.keys.partition_key(tenant, model, request)
        if partition not in self.core.partitions:  # nothing to compare with: no embedding needed
            self.metrics.lookups.labels("semantic", "miss").inc()
            return None
        try:
            vector = await self.batcher.embed(text)
        except Busy:  # overloaded: a quick miss beats an answer after the caller gave up
            self.metrics.lookups.labels("semantic", "shed").inc()
            return None
        result = self.core.search(tenant, model, partition, vector, text)
        if result.entry is not None:
            self.metrics.lookups.labels("semantic", "hit").inc()
            return Hit("semantic", result.entry, result.similarity)
        self.metrics.lookups.labels("semantic", "guard_rejected" if result.rejected else "miss").inc()
        return None

    async def put(self, tenant: str, model: str, request: dict, response: dict) -> str | None:
        """Store a response; returns the reason when it is not cacheable (None when stored)."""
        reason = refusal(response)
        body = json.dumps(response, separators=(",", ":"), ensure_ascii=False).encode() if reason is None else b""
        if reason is None and len(body) > self.settings.max_response_bytes:
            reason = "too_large"
        if reason is not None:
            self.metrics.refused.labels(reason).inc()
            return reason
        text = self.keys.semantic_text(request)
        entry = self.core.new_entry(self.keys.exact_key(tenant, model, request), tenant, model, body,
                                    self.keys.partition_key(tenant, model, request), text)
        try:
            vector = await self.batcher.embed(text) if entry.partition is not None else None
        except Busy:  # overloaded: keep the exact entry, skip the semantic one
            vector, entry.partition, entry.text, entry.semantic_expires = None, None, None, entry.created
        evicted = self.core.put(entry, vector)
        self.metrics.stores.inc()
        if isinstance(self.store, RedisStore):
            self._spawn(self.store.save(_record(entry, vector)))
            if evicted:
                self._spawn(self.store.delete([(e.tenant, e.model, e.key) for e in evicted]))
        return None

    async def invalidate(self, tenant: str | None, model: str | None) -> int:
        """Remove a tenant's, a model's, or all entries, here and in the shared store."""
        removed = await self.apply_invalidate(tenant, model)
        shared = await self.store.invalidate(tenant, model)
        return max(removed, shared)

    # ------------------------------------------------------------------ store events

    async def apply_records(self, records: list[Record]) -> None:
        """Entries written by another replica (or before a restart) join this one's."""
        now, entries, vectors = self.core.clock(), [], []
        for record in sorted(records, key=lambda r: r.created):
            known = self.core.entries.get(record.key)
            if now >= max(record.exact_expires, record.semantic_expires) or (
                    known is not None and known.created >= record.created):
                continue  # expired, or this replica holds the same entry or a newer one
            vector = record.vector if record.vector is not None and record.vector.shape == (DIM,) else None
            semantic = (self.core.config.semantic_enabled and record.partition is not None
                        and now < record.semantic_expires and (vector is not None or record.vector_follows))
            entries.append(Entry(key=record.key, tenant=record.tenant, model=record.model, response=record.response,
                                 created=record.created, exact_expires=record.exact_expires,
                                 semantic_expires=record.semantic_expires if semantic else record.created,
                                 partition=record.partition if semantic else None,
                                 text=record.text if semantic else None))
            vectors.append(vector if semantic else None)
        if entries:
            self.core.put_many(entries, vectors)
        await asyncio.sleep(0)  # let lookups run between batches of a long rebuild

    async def apply_invalidate(self, tenant: str | None, model: str | None) -> int:
        """Remove matching entries here, letting lookups run every few thousand entries looked at."""
        removed = 0
        for removed in self.core.invalidate_steps(tenant, model):
            await asyncio.sleep(0)
        self.invalidations.add(tenant, model)  # once applied: a router that drops its copies then finds none here
        return removed

    async def rebuilt(self, resync: bool) -> None:
        """The store's entries are read: fetch their vectors in the background."""
        if self._loader is not None:
            self._loader.cancel()
        self._loader = asyncio.get_running_loop().create_task(self._load_vectors(), name="vector-loader")
        self._tasks.add(self._loader)
        self._loader.add_done_callback(self._tasks.discard)

    async def _load_vectors(self) -> None:
        """Vectors of the entries a rebuild read without them, a batch at a time, as fast as the index takes them."""
        snapshot, waiting = list(self.core.entries.values()), []
        for start in range(0, len(snapshot), 100_000):
            waiting += [e for e in snapshot[start:start + 100_000] if e.label is None and e.partition is not None]
            await asyncio.sleep(0)
        del snapshot
        self.vectors_pending = len(waiting)
        async for done, batch, vectors in self._vector_batches(waiting):
            for entry, vector in zip(batch, vectors):
                if vector is not None and vector.shape == (DIM,):
                    self.core.attach_vector(entry, vector)
            self._wake.set()
            self.vectors_pending = len(waiting) - done
            await self.index_settled()  # the next batch is fetched meanwhile
        log.info("semantic index rebuilt from redis: %d vectors", self.core.counts()["semantic"])

    async def _vector_batches(self, waiting: list[Entry]):
        """(entries looked at, batch, its vectors), fetching the next batch while the caller handles one."""
        async def fetch(start: int):
            batch = [e for e in waiting[start:start + VECTOR_BATCH]
                     if e.label is None and self.core.entries.get(e.key) is e]
            vectors = await self.store.vectors([(e.tenant, e.model, e.key) for e in batch]) if batch else []
            return min(start + VECTOR_BATCH, len(waiting)), batch, vectors

        starts = iter(range(0, len(waiting), VECTOR_BATCH))
        pending = asyncio.ensure_future(fetch(next(starts, 0)))
        try:
            for start in starts:
                result = await pending
                pending = asyncio.ensure_future(fetch(start))
                yield result
            yield await pending
        finally:
            pending.cancel()

    def stats(self) -> dict:
        """Counts for /v1/stats."""
        embedder = self.embedder
        return {
            **self.core.counts(),
            "max_entries": self.core.config.max_entries,
            "threshold": self.core.config.threshold,
            "guard": self.core.config.guard,
            "store": {"type": self.store.kind, "connected": self.store.connected,
                      "errors": int(self.metrics.store_errors._value.get())},
            "embedding": {"loaded": embedder is not None, "error": self.model_error,
                          "precision": self.settings.precision,
                          "calls": getattr(embedder, "calls", 0), "texts": getattr(embedder, "texts", 0)},
            "index": {**self.core.index_stats(), "vectors_pending": self.vectors_pending},
            "ready": self.ready,
        }


def _record(entry: Entry, vector: np.ndarray | None) -> Record:
    return Record(key=entry.key, tenant=entry.tenant, model=entry.model, partition=entry.partition, text=entry.text,
                  created=entry.created, exact_expires=entry.exact_expires, semantic_expires=entry.semantic_expires,
                  response=entry.response, vector=vector)
