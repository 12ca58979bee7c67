"""The router's Prometheus metrics (names and labels: docs/metrics.md), one registry per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PREFIX = "tokenfleet_router_"
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class RouterMetrics:
    """Every router series, with label children cached for the hot path."""

    def __init__(self, fleet: str, registry: CollectorRegistry | None = None):
        self.fleet = fleet
        self.registry = r = registry or CollectorRegistry()
        self.requests = Counter(PREFIX + "requests", "Requests answered.", ["fleet", "tier", "cache", "code"],
                                registry=r)
        self.duration = Histogram(PREFIX + "request_duration_seconds", "Time from request to last byte.",
                                  ["fleet", "tier", "cache"], buckets=DURATION_BUCKETS, registry=r)
        self.ttft = Histogram(PREFIX + "time_to_first_token_seconds", "Streaming: time to the first content chunk.",
                              ["fleet", "tier"], buckets=DURATION_BUCKETS, registry=r)
        self.tokens = Counter(PREFIX + "tokens", "Tokens billed.", ["fleet", "tier", "direction", "tenant"],
                              registry=r)
        self.cost = Counter(PREFIX + "cost_usd", "Cost at the tier's price per token (USD).", ["fleet", "tier", "tenant"],
                            registry=r)
        self.cache_lookups = Counter(PREFIX + "cache_lookups", "Cache lookups by result.", ["fleet", "result"],
                                     registry=r)
        self.tokens_saved = Counter(PREFIX + "cache_tokens_saved", "Output tokens a cache hit avoided generating.",
                                    ["fleet", "kind"], registry=r)
        self.escalations = Counter(PREFIX + "escalations", "Requests moved to another tier.",
                                   ["fleet", "from_tier", "to_tier", "reason"], registry=r)
        self.coalesced = Counter(PREFIX + "coalesced_requests", "Requests that shared another's upstream call.",
                                 ["fleet"], registry=r).labels(fleet)
        self.waiting = Gauge(PREFIX + "tier_waiting_requests", "Requests held for a tier starting from zero.",
                             ["fleet", "tier"], registry=r)
        self.inflight = Gauge(PREFIX + "inflight_requests", "Requests in flight upstream.", ["fleet", "tier"],
                              registry=r)
        self.spend = Gauge(PREFIX + "budget_spend_usd", "Spend this calendar month (USD).", ["fleet"],
                           registry=r).labels(fleet)
        self.cache_errors = 0
        self._children: dict[tuple, object] = {}

    def _child(self, metric, *labels):
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(self.fleet, *labels)
        return child

    def tier_gauges(self, tier: str) -> tuple[Gauge, Gauge]:
        """(inflight, waiting) children of one tier; created at start so that they read 0."""
        return self._child(self.inflight, tier), self._child(self.waiting, tier)

    def request_done(self, tier: str, cache: str, code: int, seconds: float) -> None:
        self._child(self.requests, tier, cache, str(code)).inc()
        self._child(self.duration, tier, cache).observe(seconds)

    def first_token(self, tier: str, seconds: float) -> None:
        self._child(self.ttft, tier).observe(seconds)

    def billed(self, tier: str, tenant: str, tokens_in: int, tokens_out: int, usd: float, spend: float) -> None:
        self._child(self.tokens, tier, "input", tenant).inc(tokens_in)
        self._child(self.tokens, tier, "output", tenant).inc(tokens_out)
        self._child(self.cost, tier, tenant).inc(usd)
        self.spend.set(spend)

    def lookup(self, result: str) -> None:
        self._child(self.cache_lookups, result).inc()

    def saved(self, kind: str, tokens: int) -> None:
        self._child(self.tokens_saved, kind).inc(tokens)

    def escalated(self, from_tier: str, to_tier: str, reason: str) -> None:
        self._child(self.escalations, from_tier, to_tier, reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
