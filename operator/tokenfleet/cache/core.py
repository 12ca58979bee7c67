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
from typing import Callable

import numpy as np

from tokenfleet.cache import guard
from tokenfleet.cache.index import PartitionIndex

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
        self._exact_queue: deque[tuple[float, str]] = deque()  # (exact expiry, key), oldest first
        self._exact_live = 0

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

    def put_many(self, entries: list[Entry], vectors: np.ndarray | None, threads: int = 1) -> list[Entry]:
        """Add entries (``vectors`` holds one row per entry that has a partition, in order); returns those evicted."""
        by_partition: dict[str, tuple[list[int], list[int]]] = {}
        row = 0
        for entry in entries:
            self.remove(entry.key)
            if entry.partition is not None and vectors is not None:
                entry.label = self._next_label
                self._next_label += 1
                self.by_label[entry.label] = entry.key
                labels, rows = by_partition.setdefault(entry.partition, ([], []))
                labels.append(entry.label)
                rows.append(row)
                row += 1
            self.entries[entry.key] = entry
            if entry.exact_expires > self.clock():
                self._exact_queue.append((entry.exact_expires, entry.key))
                self._exact_live += 1
                entry.exact_counted = True
        for partition, (labels, rows) in by_partition.items():
            index = self.partitions.get(partition)
            if index is None:
                index = self.partitions[partition] = PartitionIndex(**self.index_options)
            index.add(labels, vectors[rows], threads=threads)
        return self._evict_capacity()

    def put(self, entry: Entry, vector: np.ndarray | None) -> list[Entry]:
        """Add one entry; returns the entries evicted for capacity."""
        return self.put_many([entry], None if vector is None else vector[None, :])

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
                if len(index) == 0:
                    del self.partitions[entry.partition]
        return entry

    def invalidate(self, tenant: str | None = None, model: str | None = None) -> list[str]:
        """Remove every entry of a tenant, a model, both, or (neither given) all; returns the keys removed."""
        keys = [k for k, e in self.entries.items()
                if (tenant is None or e.tenant == tenant) and (model is None or e.model == model)]
        for key in keys:
            self.remove(key)
        return keys

    def sweep(self, limit: int = 100_000) -> int:
        """Drop entries past both TTLs, oldest first (at most ``limit``); returns how many."""
        now, expired = self.clock(), []
        for key, entry in self.entries.items():
            if now < entry.expires or len(expired) >= limit:
                break  # insertion order is expiry order: the rest are younger
            expired.append(key)
        for key in expired:
            self.remove(key)
        while self._exact_queue and self._exact_queue[0][0] <= now:
            expires, key = self._exact_queue.popleft()
            entry = self.entries.get(key)
            if entry is not None and entry.exact_counted and entry.exact_expires <= now:
                self._exact_live -= 1
                entry.exact_counted = False
        if expired:
            self.on_evict("ttl", len(expired))
        return len(expired)

    def _evict_capacity(self) -> list[Entry]:
        evicted = []
        while len(self.entries) > self.config.max_entries:
            evicted.append(self.remove(next(iter(self.entries))))
        if evicted:
            self.on_evict("capacity", len(evicted))
        return evicted

    # ------------------------------------------------------------------ stats

    def counts(self) -> dict[str, int]:
        """Entries held per layer, partitions, and index slots."""
        return {
            "entries": len(self.entries),
            "exact": self._exact_live,
            "semantic": len(self.by_label),
            "partitions": len(self.partitions),
        }
