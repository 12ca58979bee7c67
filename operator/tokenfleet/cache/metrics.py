"""Prometheus metrics of the cache service (names in docs/metrics.md), on a registry owned by one app."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "tokenfleet_cache_"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class CacheMetrics:
    """The service's counters, gauges and histograms."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.lookups = Counter(PREFIX + "lookups_total", "Lookups by layer and result.", ["layer", "result"],
                               registry=r)
        self.stores = Counter(PREFIX + "stores_total", "Entries stored.", registry=r)
        self.refused = Counter(PREFIX + "stores_refused_total", "Store requests not cached, by reason.", ["reason"],
                               registry=r)
        self.evictions = Counter(PREFIX + "evictions_total", "Entries evicted, by reason (ttl, capacity).",
                                 ["reason"], registry=r)
        self.entries = Gauge(PREFIX + "entries", "Entries held, by layer.", ["layer"], registry=r)
        self.duration = Histogram(PREFIX + "lookup_duration_seconds", "Lookup time, embedding included.",
                                  buckets=LATENCY_BUCKETS, registry=r)
        self.batch = Histogram(PREFIX + "embedding_batch_size", "Texts per embedding call (micro-batching).",
                               buckets=BATCH_BUCKETS, registry=r)
        self.store_errors = Counter(PREFIX + "store_errors_total", "Backing store (Redis) failures.", registry=r)
        for layer, result in [(l, x) for l in ("exact", "semantic") for x in ("hit", "miss")] + [
                ("semantic", "guard_rejected"), ("semantic", "shed")]:
            self.lookups.labels(layer, result)
        for reason in ("ttl", "capacity"):
            self.evictions.labels(reason)

    def watch_entries(self, counts: Callable[[], dict[str, int]]) -> None:
        """Entries gauges read from the cache at scrape time."""
        self.entries.labels("exact").set_function(lambda: counts()["exact"])
        self.entries.labels("semantic").set_function(lambda: counts()["semantic"])

    def evicted(self, reason: str, n: int) -> None:
        self.evictions.labels(reason).inc(n)
