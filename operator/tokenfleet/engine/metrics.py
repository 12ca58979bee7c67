"""The emulator's Prometheus metrics, with vLLM's names and label ``model_name`` (docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# vLLM's buckets (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                   240.0, 480.0, 960.0, 1920.0, 7680.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
               40.0, 80.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class EngineMetrics:
    """One registry per emulator (created in the app's lifespan), children bound to the served name."""

    def __init__(self, model_name: str, *, legacy_names: bool = False):
        self.registry = CollectorRegistry()
        labels = ["model_name"]
        reg = self.registry
        kv_name = "vllm:gpu_cache_usage_perc" if legacy_names else "vllm:kv_cache_usage_perc"
        self.running = Gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
                             labels, registry=reg).labels(model_name)
        self.waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
                             labels, registry=reg).labels(model_name)
        self.kv_usage = Gauge(kv_name, "KV-cache usage. 1 means 100 percent usage.",
                              labels, registry=reg).labels(model_name)
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.",
                                     labels, registry=reg).labels(model_name)
        self.generation_tokens = Counter("vllm:generation_tokens", "Number of generation tokens processed.",
                                         labels, registry=reg).labels(model_name)
        self.preemptions = Counter("vllm:num_preemptions", "Cumulative number of preemptions from the engine.",
                                   labels, registry=reg).labels(model_name)
        self.prefix_queries = Counter("vllm:prefix_cache_queries", "Prefix cache queries, in tokens.",
                                      labels, registry=reg).labels(model_name)
        self.prefix_hits = Counter("vllm:prefix_cache_hits", "Prefix cache hits, in tokens.",
                                   labels, registry=reg).labels(model_name)
        success = Counter("vllm:request_success", "Count of successfully processed requests.",
                          labels + ["finished_reason"], registry=reg)
        self.success = {reason: success.labels(model_name, reason) for reason in ("stop", "length", "abort")}
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                              labels, buckets=TTFT_BUCKETS, registry=reg).labels(model_name)
        self.itl = Histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                             labels, buckets=ITL_BUCKETS, registry=reg).labels(model_name)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                             labels, buckets=LATENCY_BUCKETS, registry=reg).labels(model_name)
        self.queue_time = Histogram("vllm:request_queue_time_seconds",
                                    "Histogram of time spent in WAITING phase for request.",
                                    labels, buckets=LATENCY_BUCKETS, registry=reg).labels(model_name)

    def set_batch(self, running: int, waiting: int, kv_usage: float) -> None:
        self.running.set(running)
        self.waiting.set(waiting)
        self.kv_usage.set(kv_usage)

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)
