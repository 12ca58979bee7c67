"""The cache's in-process state: entries by exact key, one vector index per partition, TTL and capacity eviction.

No I/O and no embedding here: callers pass vectors in. Every lookup re-checks tenant, model and
partition on the entry it found, so even a colliding key or partition could not hand one
tenant's answer to another.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterator

import numpy as np

from tokenfleet.cache import guard
from tokenfleet.cache.index import Job, PartitionIndex

# Guard features of stored texts, computed when a text is first a candidate (a pure function of the text).
candidate_features = lru_cache(maxsize=65_536)(guard.features)


@dataclass(frozen=True)
class CacheConfig:
    """What a CachePolicy decides, in the units the core uses."""

    exact_enabled: bool = True
    exact_ttl: float = 3600.0
    semantic_enabled: bool = True
    semantic_ttl: float = 86400.0
    threshold: float = 0.79  # the CachePolicy default, calibrated in docs/cache.md
    max_entries: int = 1_000_000
    guard: bool = True
    candidates: int = 4  # nearest neighbours checked against threshold and guard


@dataclass
class Entry:
    """One stored response and what it answers."""

    key: str
    tenant: str
    model: str
    response: bytes  # the response body as JSON, served as stored
    created: float
    exact_expires: float
    semantic_expires: float
    partition: str | None = None
    text: str | None = None
    label: int | None = None
    exact_counted: bool = field(default=False, repr=False)  # counted in the exact layer's live entries

    @property
    def expires(self) -> float:
        return max(self.exact_expires, self.semantic_expires)


@dataclass(frozen=True)
class SemanticResult:
    """Outcome of a semantic search: the hit (or None), its similarity, and why candidates were refused."""

    entry: Entry | None
    similarity: float | None
    rejected: str | None = None  # guard reason of the best refused candidate


class CacheCore:
    """Entries, partitions and eviction; single-threaded (the event loop's thread)."""

    def __init__(self, config: CacheConfig, clock: Callable[[], float] = time.time,
                 on_evict: Callable[[str, int], None] | None = None, index_options: dict | None = None):
        self.config = config
        self.clock = clock
        self.on_evict = on_evict or (lambda reason, n: None)
        self.index_options = index_options or {}
        self.entries: OrderedDict[str, Entry] = OrderedDict()  # oldest first
        self.partitions: dict[str, PartitionIndex] = {}
        self.by_label: dict[int, str] = {}
        self._next_label = 0
        self._exact_queue: deque[tuple[float, str]] = deque()  # (exact expiry, key), about oldest first
        self._exact_live = 0
        self._dirty: set[str] = set()  # partitions that may need background index work

    # ------------------------------------------------------------------ reads

    def get_exact(self, key: str, tenant: str, model: str) -> Entry | None:
        """The live exact entry for ``key`` in this tenant and model, if any."""
        entry = self.entries.get(key)
        if entry is None or entry.tenant != tenant or entry.model != model:
            return None
        return entry if self.clock() < entry.exact_expires else None

    def search(self, tenant: str, model: str, partition: str, vector: np.ndarray,
               query: str | guard.Features | None) -> SemanticResult:
        """Best live candidate at or above the threshold in ``partition`` that the guard accepts.

        ``query`` is the looked-up text (or its guard features); the guard reads it only when a
        candidate passes the threshold, so misses never pay for it.
        """
        index = self.partitions.get(partition)
        if index is None:
            return SemanticResult(None, None)
        now, rejected, best = self.clock(), None, None
        for label, similarity in index.search(vector, self.config.candidates):
            best = similarity if best is None else best
            if similarity < self.config.threshold:
                break
            entry = self.entries.get(self.by_label.get(label, ""))
            if entry is None or entry.label != label or now >= entry.semantic_expires:
                continue
            if entry.tenant != tenant or entry.model != model or entry.partition != partition:
                continue  # a collision in the partition key never crosses tenants or models
            if self.config.guard and query is not None and entry.text is not None:
                if isinstance(query, str):
                    query = guard.features(query)
                reason = guard.compare(query, candidate_features(entry.text))
                if reason is not None:
                    rejected = rejected or reason
                    continue
            return SemanticResult(entry, similarity)
        return SemanticResult(None, best, rejected)

    # ------------------------------------------------------------------ writes

    def new_entry(self, key: str, tenant: str, model: str, response: bytes, partition: str | None,
                  text: str | None, created: float | None = None) -> Entry:
        """An entry with this policy's expiry times (not yet added)."""
        now = self.clock() if created is None else created
        semantic = self.config.semantic_enabled and partition is not None and text is not None
        return Entry(
            key=key, tenant=tenant, model=model, response=response, created=now,
            exact_expires=now + self.config.exact_ttl if self.config.exact_enabled else now,
            semantic_expires=now + self.config.semantic_ttl if semantic else now,
            partition=partition if semantic else None, text=text if semantic else None,
        )

    def put_many(self, entries: list[Entry], vectors) -> list[Entry]:
        """Add entries, ``vectors[i]`` being entry i's (None: none, or not yet); returns the entries evicted.

        An entry with a partition but no vector yet is in the exact layer only until ``attach_vector``.
        """
        now = self.clock()
        for entry, vector in zip(entries, vectors):
            self.remove(entry.key)
            self.entries[entry.key] = entry
            if entry.partition is not None and vector is not None:
                self._index(entry, vector)
            if entry.exact_expires > now:
                self._exact_queue.append((entry.exact_expires, entry.key))
                self._exact_live += 1
                entry.exact_counted = True
        if len(self._exact_queue) > 2 * len(self.entries) + 1024:
            self._compact_exact_queue()
        return self._evict_capacity()

    def attach_vector(self, entry: Entry, vector: np.ndarray) -> None:
        """Give a held entry that has none yet its vector (an entry loaded before its vector, from Redis)."""
        if entry.label is None and entry.partition is not None and self.entries.get(entry.key) is entry:
            self._index(entry, vector)

    def _index(self, entry: Entry, vector: np.ndarray) -> None:
        entry.label = self._next_label
        self._next_label += 1
        self.by_label[entry.label] = entry.key
        index = self.partitions.get(entry.partition)
        if index is None:
            index = self.partitions[entry.partition] = PartitionIndex(**self.index_options)
        index.add([entry.label], vector)
        self._dirty.add(entry.partition)

    def put(self, entry: Entry, vector: np.ndarray | None) -> list[Entry]:
        """Add one entry; returns the entries evicted for capacity."""
        return self.put_many([entry], [vector])

    def remove(self, key: str) -> Entry | None:
        """Drop one entry and its vector."""
        entry = self.entries.pop(key, None)
        if entry is not None and entry.exact_counted:
            self._exact_live -= 1
            entry.exact_counted = False
        if entry is not None and entry.label is not None:
            self.by_label.pop(entry.label, None)
            index = self.partitions.get(entry.partition or "")
            if index is not None:
                index.remove(entry.label)
                if len(index) == 0 and not index.busy:
                    del self.partitions[entry.partition]
                else:
                    self._dirty.add(entry.partition)
        return entry

    def invalidate(self, tenant: str | None = None, model: str | None = None) -> int:
        """Remove every entry of a tenant, a model, both, or (neither given) all; returns how many."""
        removed = 0
        for removed in self.invalidate_steps(tenant, model):
            pass
        return removed

    def invalidate_steps(self, tenant: str | None, model: str | None, step: int = 20_000) -> Iterator[int]:
        """``invalidate`` in steps of ``step`` entries looked at, yielding the count so far after each.

        The caller may serve lookups between steps; an entry stored meanwhile is newer than the
        invalidation and stays.
        """
        if tenant is None and model is None:
            removed = len(self.entries)
            self.entries, self.partitions, self.by_label = OrderedDict(), {}, {}
            self._exact_queue, self._exact_live, self._dirty = deque(), 0, set()
            yield removed
            return
        snapshot, removed = list(self.entries.values()), 0
        for start in range(0, len(snapshot), step):
            for entry in snapshot[start:start + step]:
                if (tenant is None or entry.tenant == tenant) and (model is None or entry.model == model) \
                        and self.entries.get(entry.key) is entry:
                    self.remove(entry.key)
                    removed += 1
            yield removed

    def sweep(self, limit: int = 100_000) -> int:
        """Drop entries past both TTLs, oldest first (at most ``limit``); returns how many."""
        now, expired = self.clock(), []
        for key, entry in self.entries.items():
            if now < entry.expires or len(expired) >= limit:
                break  # insertion order is expiry order: the rest are younger
            expired.append(key)
        for key in expired:
            self.remove(key)
        queue = self._exact_queue
        while queue:  # past their exact TTL: uncounted; removed or replaced since: dropped at once
            expires, key = queue[0]
            entry = self.entries.get(key)
            live = entry is not None and entry.exact_counted and entry.exact_expires == expires
            if live and expires > now:
                break
            queue.popleft()
            if live:
                self._exact_live -= 1
                entry.exact_counted = False
        if expired:
            self.on_evict("ttl", len(expired))
        return len(expired)

    def _compact_exact_queue(self) -> None:
        """Keep only the queue items of entries still counted (removals leave theirs behind)."""
        self._exact_queue = deque((e.exact_expires, k) for k, e in self.entries.items() if e.exact_counted)

    def _evict_capacity(self) -> list[Entry]:
        evicted = []
        while len(self.entries) > self.config.max_entries:
            evicted.append(self.remove(next(iter(self.entries))))
        if evicted:
            self.on_evict("capacity", len(evicted))
        return evicted

    # ------------------------------------------------------------------ index upkeep

    def next_job(self) -> Job | None:
        """Background index work a partition needs (a merge or a shrink), for a worker thread; None if none."""
        while self._dirty:
            partition = self._dirty.pop()
            index = self.partitions.get(partition)
            job = index.start_job() if index is not None else None
            if job is not None:
                job.partition = partition
                return job
        return None

    def next_job_pending(self) -> bool:
        """Whether some partition may need index work (``next_job`` would look)."""
        return bool(self._dirty)

    def finish_job(self, job: Job) -> None:
        """Back on the event loop after ``job.run``: the partition takes the result."""
        job.index.finish(job)
        if self.partitions.get(job.partition) is not job.index:
            return  # invalidated meanwhile
        if len(job.index) == 0:
            del self.partitions[job.partition]
        else:
            self._dirty.add(job.partition)  # it may have grown while busy

    def run_jobs(self, threads: int = 1) -> int:
        """Do all pending index work here and now (benchmarks and tests); returns how many jobs ran."""
        done = 0
        while (job := self.next_job()) is not None:
            job.run(threads)
            self.finish_job(job)
            done += 1
        return done

    # ------------------------------------------------------------------ stats

    def counts(self) -> dict[str, int]:
        """Entries held per layer, partitions, and index slots."""
        return {
            "entries": len(self.entries),
            "exact": self._exact_live,
            "semantic": len(self.by_label),
            "partitions": len(self.partitions),
        }

    def index_stats(self) -> dict[str, int]:
        """How the partitions hold their vectors: HNSW parts, slots allocated, busy parts, bytes."""
        parts = list(self.partitions.values())
        return {"hnsw_partitions": sum(p.hnsw is not None for p in parts),
                "hnsw_slots": sum(p.capacity() for p in parts),
                "busy_partitions": sum(p.busy for p in parts),
                "index_bytes": sum(p.memory_bytes() for p in parts)}
