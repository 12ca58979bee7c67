"""The only module that talks to Prometheus: a tier's engine signals through prometheus-api-client.

``EngineMetrics(settings).read(tier)`` evaluates a handful of instant PromQL queries at one time
and returns ``autoscaling.TierSignals`` (or None when Prometheus cannot answer: the policy then
holds). Series are selected by labels a Kubernetes scrape gives; the selectors are templates
with ``{namespace}``, ``{tier}``, ``{model}`` (the served model name) and ``{deployment}``,
configurable through ``TOKENFLEET_METRICS_*`` (docs/autoscaling.md):

- engine series: ``namespace="{namespace}",model_name="{model}"`` (vLLM labels every series with
  ``model_name``; the scrape adds ``namespace``);
- router series: ``namespace="{namespace}",tier="{tier}"``;
- one replica is one value of the ``instance`` label (the scraped pod's address), or ``pod``.

Per replica: mean running and waiting requests and KV-cache use over the window (KV from
``vllm:kv_cache_usage_perc``, else the older ``vllm:gpu_cache_usage_perc``, replica by replica),
rates of prompt and generated tokens and of finished requests, and the age of its newest sample.
A replica whose scrape fails disappears from the instant queries (Prometheus marks its series
stale) and is left out, so that the others still decide. Tier-wide: TTFT p95 and the requests
the router holds for the tier while it starts from zero.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from tokenfleet.autoscaling import ReplicaSignals, TierSignals

log = logging.getLogger(__name__)

DEFAULT_ENGINE_SELECTOR = 'namespace="{namespace}",model_name="{model}"'
DEFAULT_ROUTER_SELECTOR = 'namespace="{namespace}",tier="{tier}"'
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
WINDOW = re.compile(r"^[0-9]+(ms|s|m|h)$")


@dataclass(frozen=True)
class MetricsSettings:
    """Where and how the signals are read; ``from_env`` reads TOKENFLEET_METRICS_* once."""

    prometheus_url: str
    engine_selector: str = DEFAULT_ENGINE_SELECTOR
    router_selector: str = DEFAULT_ROUTER_SELECTOR
    replica_label: str = "instance"
    window: str = "1m"  # PromQL range of means and rates
    timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not LABEL_NAME.match(self.replica_label):
            raise ValueError(f"replica label must be a Prometheus label name: {self.replica_label!r}")
        if not WINDOW.match(self.window):
            raise ValueError(f"window must be a PromQL duration such as 1m or 30s: {self.window!r}")
        for selector in (self.engine_selector, self.router_selector):
            _fill(selector, TierRef("ns", "tier", "model"))  # fails early on an unknown placeholder

    @classmethod
    def from_env(cls, prometheus_url: str, env: Mapping[str, str] | None = None) -> "MetricsSettings":
        env = os.environ if env is None else env
        names = {"engine_selector": "TOKENFLEET_METRICS_ENGINE_SELECTOR",
                 "router_selector": "TOKENFLEET_METRICS_ROUTER_SELECTOR",
                 "replica_label": "TOKENFLEET_METRICS_REPLICA_LABEL",
                 "window": "TOKENFLEET_METRICS_WINDOW"}
        values = {field: env[var].strip() for field, var in names.items() if env.get(var, "").strip()}
        return cls(prometheus_url=prometheus_url, **values)


@dataclass(frozen=True)
class TierRef:
    """The labels that identify one tier's series."""

    namespace: str
    tier: str
    model: str  # served model name (vLLM's model_name label)
    deployment: str = ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _fill(template: str, tier: TierRef) -> str:
    values = {k: _escape(v) for k, v in vars(tier).items()}
    try:
        return template.format(**values)
    except (KeyError, IndexError) as err:
        raise ValueError(f"selector {template!r}: unknown placeholder {err}; use {{namespace}}, {{tier}}, "
                         "{{model}} or {{deployment}}") from None


def queries(settings: MetricsSettings, tier: TierRef) -> dict[str, str]:
    """The PromQL of every signal, keyed by the ReplicaSignals field (or tier-wide name) it fills."""
    s, w, by = _fill(settings.engine_selector, tier), settings.window, settings.replica_label

    def mean(metric: str) -> str:
        return f"sum by ({by}) (avg_over_time({metric}{{{s}}}[{w}]))"

    def rate(metric: str) -> str:
        return f"sum by ({by}) (rate({metric}{{{s}}}[{w}]))"

    return {
        "running": mean("vllm:num_requests_running"),
        "waiting": mean("vllm:num_requests_waiting"),
        "kv_cache_usage": f"max by ({by}) (avg_over_time(vllm:kv_cache_usage_perc{{{s}}}[{w}])) "
                          f"or max by ({by}) (avg_over_time(vllm:gpu_cache_usage_perc{{{s}}}[{w}]))",
        "prompt_tokens_per_second": rate("vllm:prompt_tokens_total"),
        "generation_tokens_per_second": rate("vllm:generation_tokens_total"),
        "requests_per_second": rate("vllm:request_success_total"),
        "sample_time": f"max by ({by}) (timestamp(vllm:num_requests_running{{{s}}}))",
        "ttft_p95_seconds": "histogram_quantile(0.95, sum by (le) "
                            f"(rate(vllm:time_to_first_token_seconds_bucket{{{s}}}[{w}])))",
        "router_waiting": f"sum(tokenfleet_router_tier_waiting_requests{{{_fill(settings.router_selector, tier)}}})",
    }


def _number(sample: dict) -> float | None:
    try:
        value = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def build_signals(results: dict[str, list[dict]], replica_label: str, at: float) -> TierSignals:
    """Pure: query results (Prometheus' ``result`` lists) evaluated at ``at`` -> TierSignals."""
    per: dict[str, dict[str, float]] = {}
    for key, samples in results.items():
        if key in ("ttft_p95_seconds", "router_waiting"):
            continue
        for sample in samples:
            name = (sample.get("metric") or {}).get(replica_label, "")
            value = _number(sample)
            if value is not None:
                per.setdefault(name, {})[key] = value
    replicas = []
    for name, values in sorted(per.items()):
        if "sample_time" not in values:
            continue  # no fresh sample: its scrape failed or it stopped reporting
        replicas.append(ReplicaSignals(
            name=name,
            running=values.get("running", 0.0),
            waiting=values.get("waiting", 0.0),
            kv_cache_usage=values.get("kv_cache_usage"),
            prompt_tokens_per_second=values.get("prompt_tokens_per_second", 0.0),
            generation_tokens_per_second=values.get("generation_tokens_per_second", 0.0),
            requests_per_second=values.get("requests_per_second", 0.0),
            age_seconds=max(0.0, at - values["sample_time"]),
        ))
    ttft = next((v for v in map(_number, results.get("ttft_p95_seconds", [])) if v is not None), None)
    waiting = sum(v for v in map(_number, results.get("router_waiting", [])) if v is not None)
    return TierSignals(replicas=tuple(replicas), ttft_p95_seconds=ttft, router_waiting=waiting)


class EngineMetrics:
    """A Prometheus client for the autoscaler (blocking calls: run them in a thread from async code)."""

    def __init__(self, settings: MetricsSettings):
        self.settings = settings
        self.client = PrometheusConnect(
            url=settings.prometheus_url.rstrip("/"),
            disable_ssl=False,
            retry=Retry(total=0),  # a down Prometheus answers at once; the next decision retries
            timeout=settings.timeout_seconds,
        )

    def query(self, promql: str, at: float) -> list[dict]:
        return self.client.custom_query(promql, params={"time": f"{at:.3f}"})

    def read(self, tier: TierRef, at: float | None = None) -> TierSignals | None:
        """The tier's signals at ``at`` (default: now); None when any query fails."""
        at = time.time() if at is None else at
        results = {}
        try:
            for key, promql in queries(self.settings, tier).items():
                results[key] = self.query(promql, at)
        except (PrometheusApiClientException, requests.RequestException, ValueError, KeyError) as err:
            log.warning("Prometheus at %s did not answer for %s/%s: %s", self.settings.prometheus_url,
                        tier.namespace, tier.tier, err)
            return None
        return build_signals(results, self.settings.replica_label, at)
