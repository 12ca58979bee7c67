"""Backing stores: ``memory`` (nothing outside the process) or ``redis`` (entries and vectors shared by replicas).

Lookups never touch Redis: every replica answers from its own index, which it rebuilds from Redis
on start and keeps current by following a Redis stream of changes (stores and invalidations).
A rebuild reads entries without their vectors first (the exact layer, quick), then the service
fetches the vectors in batches as its index takes them. After a Redis failure the replica goes on
following the stream where it stopped; only when events were lost meanwhile (the stream trimmed,
Redis emptied) does it drop its entries and rebuild. Stores write through in the background. Any
Redis failure is counted and logged, never raised to a lookup or store caller: the cache fails open.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

log = logging.getLogger("tokenfleet.cache.store")


@dataclass
class Record:
    """An entry as Redis holds it."""

    key: str
    tenant: str
    model: str
    partition: str | None
    text: str | None
    created: float
    exact_expires: float
    semantic_expires: float
    response: bytes
    vector: np.ndarray | None
    vector_follows: bool = False  # read without its vector, which the service fetches later


class Sink(Protocol):
    """What a store feeds: the service."""

    async def apply_records(self, records: list[Record]) -> None: ...

    async def apply_invalidate(self, tenant: str | None, model: str | None) -> None: ...

    async def rebuilt(self, resync: bool) -> None: ...


def _short(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


class MemoryStore:
    """Nothing leaves the process: entries are lost on restart."""

    kind = "memory"
    connected = False

    async def start(self, sink: Sink) -> None:
        """Nothing to rebuild."""

    async def save(self, record: Record) -> None:
        """Nothing to write."""

    async def delete(self, records: list[tuple[str, str, str]]) -> None:
        """Nothing to delete."""

    async def invalidate(self, tenant: str | None, model: str | None) -> int:
        return 0

    async def close(self) -> None:
        """Nothing to close."""


class RedisStore:
    """Entries as Redis hashes (``<prefix>e:<tenant#>:<model#>:<key>``) that expire with them, plus a change log."""

    kind = "redis"

    def __init__(self, url: str, prefix: str = "tokenfleet:cache:", on_error: Callable[[], None] | None = None,
                 log_length: int = 100_000, retry_seconds: float = 1.0, max_writes: int = 32,
                 max_queued: int = 1024):
        import redis.asyncio as aioredis

        self.prefix = prefix
        self.on_error = on_error or (lambda: None)
        self.log_key = prefix + "log"
        self.epoch_key = prefix + "epoch"  # set once per Redis data set: gone or changed means Redis was emptied
        self.log_length = log_length
        self.retry = retry_seconds
        self.max_queued = max_queued  # writes waiting beyond this are dropped (and counted): Redis is too slow
        self.origin = secrets.token_hex(8)  # this replica, to skip its own events in the log
        self.redis = aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.reader = aioredis.from_url(url, socket_timeout=5.0, socket_connect_timeout=1.0)
        self.connected = False
        self.synced = asyncio.Event()  # set after the first rebuild attempt, whatever its outcome
        self.position: bytes | None = None  # last stream event applied (None: rebuild first)
        self.epoch: bytes | None = None
        self._writes = asyncio.Semaphore(max_writes)  # connections writes may hold (redis-py's pool has 100)
        self._queued = 0
        self._task: asyncio.Task | None = None

    def entry_key(self, tenant: str, model: str, key: str) -> str:
        return f"{self.prefix}e:{_short(tenant)}:{_short(model)}:{key}"

    def _failed(self, what: str, err: BaseException) -> None:
        self.connected = False
        self.on_error()
        log.warning("redis %s failed: %r", what, err)

    # ------------------------------------------------------------------ writes

    async def save(self, record: Record) -> None:
        """Write one entry and announce it; failures are counted, not raised."""
        if self._queued >= self.max_queued:
            self._failed("save", RuntimeError(f"{self.max_queued} writes already waiting: entry not shared"))
            return
        self._queued += 1
        try:
            async with self._writes:
                await self._save(record)
        finally:
            self._queued -= 1

    async def _save(self, record: Record) -> None:
        meta = {"key": record.key, "tenant": record.tenant, "model": record.model, "partition": record.partition,
                "text": record.text, "created": record.created, "exact_expires": record.exact_expires,
                "semantic_expires": record.semantic_expires}
        name = self.entry_key(record.tenant, record.model, record.key)
        vector = b"" if record.vector is None else np.asarray(record.vector, dtype=np.float32).tobytes()
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(name)
                pipe.hset(name, mapping={"meta": json.dumps(meta), "vec": vector, "resp": record.response})
                pipe.pexpireat(name, int(max(record.exact_expires, record.semantic_expires) * 1000))
                pipe.xadd(self.log_key, {"op": "put", "name": name, "origin": self.origin},
                          maxlen=self.log_length, approximate=True)
                await pipe.execute()
            self.connected = True
        except Exception as err:  # noqa: BLE001 - fail open
            self._failed("save", err)

    async def delete(self, records: list[tuple[str, str, str]]) -> None:
        """Delete (tenant, model, key) entries, e.g. evicted for capacity; not announced."""
        if not records:
            return
        try:
            await self.redis.unlink(*(self.entry_key(*r) for r in records))
        except Exception as err:  # noqa: BLE001
            self._failed("delete", err)

    async def invalidate(self, tenant: str | None, model: str | None) -> int:
        """Delete the matching entries and tell the other replicas; returns how many Redis held."""
        pattern = f"{self.prefix}e:{_short(tenant) if tenant is not None else '*'}:" \
                  f"{_short(model) if model is not None else '*'}:*"
        removed = 0
        try:
            batch = []
            async for name in self.redis.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) >= 1000:
                    removed += await self.redis.unlink(*batch)
                    batch = []
            if batch:
                removed += await self.redis.unlink(*batch)
            event = {"op": "invalidate", "tenant": json.dumps(tenant), "model": json.dumps(model),
                     "origin": self.origin}
            await self.redis.xadd(self.log_key, event, maxlen=self.log_length, approximate=True)
        except Exception as err:  # noqa: BLE001
            self._failed("invalidate", err)
        return removed

    # ------------------------------------------------------------------ reads

    def _record(self, name: bytes, meta: bytes | None, response: bytes | None, vector: bytes | None,
                vector_size: int | None = None) -> Record | None:
        """An entry from its hash fields; None (counted) when it is gone or malformed."""
        if meta is None:
            return None  # expired or deleted since it was listed
        try:
            record = Record(response=response or b"null", vector=None, **json.loads(meta))
        except (ValueError, TypeError) as err:
            self._failed(f"read of {name!r}", err)
            return None
        if vector:
            record.vector = np.frombuffer(vector, dtype=np.float32).copy()
        record.vector_follows = bool(vector_size) and vector is None
        return record

    async def _load(self, names: list[bytes], with_vectors: bool = True) -> list[Record]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hmget(name, "meta", "resp", "vec") if with_vectors else pipe.hmget(name, "meta", "resp")
                if not with_vectors:
                    pipe.hstrlen(name, "vec")
            results = await pipe.execute()
        if with_vectors:
            fields = [(meta, resp, vec, None) for meta, resp, vec in results]
        else:
            fields = [(meta, resp, None, size) for (meta, resp), size in zip(results[::2], results[1::2])]
        return [r for r in (self._record(n, *f) for n, f in zip(names, fields)) if r is not None]

    async def vectors(self, refs: list[tuple[str, str, str]]) -> list[np.ndarray | None]:
        """The stored vectors of (tenant, model, key) entries (None where gone); retried until Redis answers."""
        while True:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for ref in refs:
                        pipe.hget(self.entry_key(*ref), "vec")
                    raws = await pipe.execute()
                return [np.frombuffer(raw, dtype=np.float32).copy() if raw else None for raw in raws]
            except Exception as err:  # noqa: BLE001 - the rebuild waits for Redis
                self._failed("vector read", err)
                await asyncio.sleep(self.retry)

    async def _rebuild(self, sink: Sink) -> None:
        """Load every entry without its vector; sets the log position to follow from (taken before the scan)."""
        await self.redis.set(self.epoch_key, secrets.token_hex(8), nx=True)
        self.epoch = await self.redis.get(self.epoch_key)
        last = await self.redis.xrevrange(self.log_key, count=1)
        position = last[0][0] if last else b"0-0"
        names, loaded = [], 0
        async for name in self.redis.scan_iter(match=f"{self.prefix}e:*", count=1000):
            names.append(name)
            if len(names) >= 1000:
                records = await self._load(names, with_vectors=False)
                await sink.apply_records(records)
                loaded, names = loaded + len(records), []
        if names:
            records = await self._load(names, with_vectors=False)
            await sink.apply_records(records)
            loaded += len(records)
        log.info("rebuilt the cache from redis: %d entries (vectors follow)", loaded)
        self.position = position

    async def _can_resume(self) -> bool:
        """Whether following may go on where it stopped: the same Redis data and no event trimmed since."""
        if self.position is None or await self.redis.get(self.epoch_key) != self.epoch:
            return False
        if self.position != b"0-0":
            return bool(await self.redis.xrange(self.log_key, min=self.position, max=self.position, count=1))
        if not await self.redis.exists(self.log_key):
            return True  # nothing was logged since
        info = await self.redis.xinfo_stream(self.log_key)
        return info.get("entries-added") == info.get("length")  # none trimmed (Redis 7)

    async def _follow(self, sink: Sink) -> None:
        """Apply the other replicas' events in order; the position moves once a batch is applied."""
        while True:
            answer = await self.reader.xread({self.log_key: self.position}, count=500, block=1000)
            for _, events in answer or []:
                puts: list[bytes] = []
                for _, fields in events:
                    op = fields.get(b"op")
                    if fields.get(b"origin", b"").decode() == self.origin:
                        continue
                    if op == b"put" and fields.get(b"name"):
                        puts.append(fields[b"name"])
                    elif op == b"invalidate":
                        if puts:
                            await sink.apply_records(await self._load(puts))
                            puts = []
                        await self._apply_invalidate(sink, fields)
                if puts:
                    await sink.apply_records(await self._load(puts))
                self.position = events[-1][0]

    async def _apply_invalidate(self, sink: Sink, fields: dict) -> None:
        try:
            tenant, model = json.loads(fields[b"tenant"]), json.loads(fields[b"model"])
        except (KeyError, ValueError) as err:  # a malformed event is skipped, never retried forever
            self._failed("invalidate event", err)
            return
        await sink.apply_invalidate(tenant, model)

    async def _run(self, sink: Sink) -> None:
        while True:
            try:
                if not await self._can_resume():
                    if self.position is not None:
                        log.warning("redis lost change-log events (trimmed or emptied): rebuilding")
                    resync, self.position = self.position is not None, None
                    if resync:  # what this replica holds may have been invalidated meanwhile
                        await sink.apply_invalidate(None, None)
                    await self._rebuild(sink)
                    await sink.rebuilt(resync)
                self.connected = True
                self.synced.set()
                await self._follow(sink)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - retry: resume or rebuild once Redis answers
                self._failed("sync", err)
                self.synced.set()
                await asyncio.sleep(self.retry)

    async def start(self, sink: Sink) -> None:
        """Rebuild from Redis and follow the change log in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run(sink), name="redis-follower")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for client in (self.redis, self.reader):
            try:
                await client.aclose()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
