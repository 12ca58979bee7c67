"""The router's Prometheus metrics (names and labels: docs/metrics.md), one registry per app.

Requests update plain Python numbers (a dict increment, a bisect for histograms); a custom
collector turns them into metric families at scrape time. prometheus_client's own metric
objects cost about a microsecond per update with locks and label lookups, several per request.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

PREFIX = "tokenfleet_router_"
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

# name -> (help, label names after 'fleet')
COUNTERS = {
    "requests": ("Requests answered.", ("tier", "cache", "code")),
    "tokens": ("Tokens billed.", ("tier", "direction", "tenant")),
    "cost_usd": ("Cost at the tier's price per token (USD).", ("tier", "tenant")),
    "cache_lookups": ("Cache lookups by result.", ("result",)),
    "cache_stores": ("Stores sent to the cache service, by result.", ("result",)),
    "cache_invalidation_polls": ("Polls of the cache service's invalidations, by result.", ("result",)),
    "local_cache_invalidated": ("In-process cache entries dropped because the cache service invalidated them.", ()),
    "cache_tokens_saved": ("Output tokens a cache hit avoided generating.", ("kind",)),
    "escalations": ("Requests moved to another tier.", ("from_tier", "to_tier", "reason")),
    "coalesced_requests": ("Requests that shared another's upstream call.", ()),
}
HISTOGRAMS = {
    "request_duration_seconds": ("Time from request to last byte.", ("tier", "cache")),
    "time_to_first_token_seconds": ("Streaming: time to the first content chunk.", ("tier",)),
}
GAUGES = {
    "tier_waiting_requests": ("Requests held for a tier starting from zero.", ("tier",)),
    "inflight_requests": ("Requests in flight upstream.", ("tier",)),
    "budget_spend_usd": ("Spend this calendar month (USD).", ()),
    "budget_limit_usd": ("The fleet's budget.monthlyUSD; absent without one (the budget alert then uses the "
                         "chart's).", ()),
}


class Value:
    """A number that requests change and scrapes read."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value


class RouterMetrics:
    """Every router series; the same names and labels as prometheus_client objects would give."""

    def __init__(self, fleet: str, registry: CollectorRegistry | None = None):
        self.fleet = fleet
        self.counters: dict[str, dict[tuple, float]] = {name: defaultdict(float) for name in COUNTERS}
        self.histograms: dict[str, dict[tuple, list]] = {name: {} for name in HISTOGRAMS}
        self.gauges: dict[str, dict[tuple, Value]] = {name: {} for name in GAUGES}
        self.coalesced = _CounterHandle(self.counters["coalesced_requests"], ())
        self.spend = self._gauge("budget_spend_usd", ())
        self.registry = registry or CollectorRegistry()
        self.registry.register(self)

    def _gauge(self, name: str, labels: tuple) -> Value:
        return self.gauges[name].setdefault(labels, Value())

    def _observe(self, name: str, labels: tuple, value: float) -> None:
        state = self.histograms[name].get(labels)
        if state is None:
            state = self.histograms[name][labels] = [[0] * (len(DURATION_BUCKETS) + 1), 0.0]
        state[0][bisect_left(DURATION_BUCKETS, value)] += 1
        state[1] += value

    def tier_gauges(self, tier: str) -> tuple[Value, Value]:
        """(inflight, waiting) of one tier; created at start so that they read 0."""
        return self._gauge("inflight_requests", (tier,)), self._gauge("tier_waiting_requests", (tier,))

    def request_done(self, tier: str, cache: str, code: int, seconds: float) -> None:
        self.counters["requests"][(tier, cache, code)] += 1
        self._observe("request_duration_seconds", (tier, cache), seconds)

    def first_token(self, tier: str, seconds: float) -> None:
        self._observe("time_to_first_token_seconds", (tier,), seconds)

    def billed(self, tier: str, tenant: str, tokens_in: int, tokens_out: int, usd: float, spend: float) -> None:
        tokens = self.counters["tokens"]
        tokens[(tier, "input", tenant)] += tokens_in
        tokens[(tier, "output", tenant)] += tokens_out
        self.counters["cost_usd"][(tier, tenant)] += usd
        self.spend.value = spend

    def lookup(self, result: str) -> None:
        self.counters["cache_lookups"][(result,)] += 1

    def stored(self, result: str) -> None:
        self.counters["cache_stores"][(result,)] += 1

    def budget_limit(self, usd: float) -> None:
        self._gauge("budget_limit_usd", ()).set(usd)

    def invalidation_poll(self, result: str, dropped: int = 0) -> None:
        self.counters["cache_invalidation_polls"][(result,)] += 1
        self.counters["local_cache_invalidated"][()] += dropped

    def saved(self, kind: str, tokens: int) -> None:
        self.counters["cache_tokens_saved"][(kind,)] += tokens

    def escalated(self, from_tier: str, to_tier: str, reason: str) -> None:
        self.counters["escalations"][(from_tier, to_tier, reason)] += 1

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ prometheus_client collector

    def collect(self):
        for name, (doc, labels) in COUNTERS.items():
            family = CounterMetricFamily(PREFIX + name, doc, labels=["fleet", *labels])
            series = dict(self.counters[name]) or ({(): 0.0} if not labels else {})
            for values, value in series.items():
                family.add_metric([self.fleet, *map(str, values)], value)
            yield family
        for name, (doc, labels) in HISTOGRAMS.items():
            family = HistogramMetricFamily(PREFIX + name, doc, labels=["fleet", *labels])
            for values, (counts, total) in list(self.histograms[name].items()):
                cumulative, buckets = 0, []
                for bound, count in zip((*map(str, DURATION_BUCKETS), "+Inf"), counts):
                    cumulative += count
                    buckets.append((bound, cumulative))
                family.add_metric([self.fleet, *values], buckets, total)
            yield family
        for name, (doc, labels) in GAUGES.items():
            family = GaugeMetricFamily(PREFIX + name, doc, labels=["fleet", *labels])
            for values, gauge in list(self.gauges[name].items()):
                family.add_metric([self.fleet, *values], gauge.value)
            yield family


class _CounterHandle:
    """``.inc()`` on one series of a counter."""

    __slots__ = ("series", "labels")

    def __init__(self, series: dict, labels: tuple):
        self.series, self.labels = series, labels

    def inc(self, amount: float = 1.0) -> None:
        self.series[self.labels] += amount
