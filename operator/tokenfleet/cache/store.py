"""Backing stores: ``memory`` (nothing outside the process) or ``redis`` (entries and vectors shared by replicas).

Lookups never touch Redis: every replica answers from its own index, which it rebuilds from Redis
on start and keeps current by following a Redis stream of changes (stores and invalidations).
Stores write through in the background. Any Redis failure is counted and logged, never raised to a
lookup or store caller: the cache fails open.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Awaitable, Callable

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


def _short(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


class MemoryStore:
    """Nothing leaves the process: entries are lost on restart."""

    kind = "memory"
    connected = False

    async def start(self, apply_put, apply_invalidate) -> None:
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
                 log_length: int = 100_000, retry_seconds: float = 1.0):
        import redis.asyncio as aioredis

        self.prefix = prefix
        self.on_error = on_error or (lambda: None)
        self.log_key = prefix + "log"
        self.log_length = log_length
        self.retry = retry_seconds
        self.origin = secrets.token_hex(8)  # this replica, to skip its own events in the log
        self.redis = aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.reader = aioredis.from_url(url, socket_timeout=5.0, socket_connect_timeout=1.0)
        self.connected = False
        self.synced = asyncio.Event()  # set after the first rebuild attempt, whatever its outcome
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

    @staticmethod
    def _record(fields: dict) -> Record | None:
        if not fields or b"meta" not in fields:
            return None
        meta = json.loads(fields[b"meta"])
        raw = fields.get(b"vec") or b""
        vector = np.frombuffer(raw, dtype=np.float32).copy() if raw else None
        return Record(response=fields.get(b"resp", b"null"), vector=vector, **meta)

    async def _load(self, names: list) -> list[Record]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(name)
            results = await pipe.execute()
        return [r for r in map(self._record, results) if r is not None]

    async def _rebuild(self, apply_put: Callable[[list[Record]], Awaitable[None]]) -> bytes:
        """Load every entry; returns the log position to follow from (taken before the scan)."""
        last = await self.redis.xrevrange(self.log_key, count=1)
        position = last[0][0] if last else b"0-0"
        names, loaded = [], 0
        async for name in self.redis.scan_iter(match=f"{self.prefix}e:*", count=1000):
            names.append(name)
            if len(names) >= 1000:
                records = await self._load(names)
                await apply_put(records)
                loaded, names = loaded + len(records), []
        if names:
            records = await self._load(names)
            await apply_put(records)
            loaded += len(records)
        log.info("rebuilt the cache from redis: %d entries", loaded)
        return position

    async def _follow(self, position: bytes, apply_put, apply_invalidate) -> None:
        while True:
            answer = await self.reader.xread({self.log_key: position}, count=500, block=1000)
            for _, events in answer or []:
                puts = []
                for event_id, fields in events:
                    position = event_id
                    if fields.get(b"origin", b"").decode() == self.origin:
                        continue
                    if fields.get(b"op") == b"put":
                        puts.append(fields[b"name"])
                    elif fields.get(b"op") == b"invalidate":
                        if puts:
                            await apply_put(await self._load(puts))
                            puts = []
                        await apply_invalidate(json.loads(fields[b"tenant"]), json.loads(fields[b"model"]))
                if puts:
                    await apply_put(await self._load(puts))

    async def _run(self, apply_put, apply_invalidate) -> None:
        while True:
            try:
                position = await self._rebuild(apply_put)
                self.connected = True
                self.synced.set()
                await self._follow(position, apply_put, apply_invalidate)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - retry: a later rebuild catches up
                self._failed("sync", err)
                self.synced.set()
                await asyncio.sleep(self.retry)

    async def start(self, apply_put, apply_invalidate) -> None:
        """Rebuild from Redis and follow the change log in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run(apply_put, apply_invalidate),
                                                            name="redis-follower")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for client in (self.redis, self.reader):
            try:
                await client.aclose()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
