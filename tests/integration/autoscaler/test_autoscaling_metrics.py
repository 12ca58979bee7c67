"""tokenfleet.metrics against a real Prometheus holding backfilled samples, queried at a fixed time."""

from __future__ import annotations

import time

import pytest

from tests.integration.autoscaler.prom import backfill, prometheus
from tests.support.procs import free_port
from tokenfleet.autoscaling import ScalingPolicy, aggregate, desired_replicas
from tokenfleet.metrics import EngineMetrics, MetricsSettings, TierRef

NS, TIER, MODEL = "prod", "small", "llama-8b"
SECONDS = 180  # one sample per second per series
STALE_AFTER = 60  # replica c stops reporting after this many seconds
TTFT_BUCKETS = ((0.25, 5), (0.5, 10), (1.0, 20), ("+Inf", 20))  # cumulative observations per second


def series(name: str, labels: dict, value: float, t: float) -> str:
    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{text}}} {value} {t:.3f}"


def openmetrics(t0: float) -> str:
    """Three replicas of one tier, a replica of another model, and the router's held requests.

    a: new KV metric name; b: only the legacy one; c: stops reporting at STALE_AFTER;
    counters grow at exact rates so that rate() is exact.
    """
    replicas = {  # running, waiting, kv metric, kv, prompt/s, generated/s, requests/s
        "10.0.0.1:8000": (3, 1, "vllm:kv_cache_usage_perc", 0.5, 100, 20, 0.5),
        "10.0.0.2:8000": (5, 3, "vllm:gpu_cache_usage_perc", 0.7, 200, 40, 1.0),
        "10.0.0.3:8000": (9, 9, "vllm:kv_cache_usage_perc", 0.9, 900, 90, 2.0),
    }
    families: dict[str, tuple[str, list[str]]] = {}

    def add(family: str, kind: str, line: str) -> None:
        families.setdefault(family, (kind, []))[1].append(line)

    for instance, (running, waiting, kv_name, kv, prompt, gen, reqs) in replicas.items():
        labels = {"namespace": NS, "model_name": MODEL, "instance": instance}
        last = STALE_AFTER if instance.startswith("10.0.0.3") else SECONDS
        for i in range(last + 1):
            t = t0 + i
            add("vllm:num_requests_running", "gauge", series("vllm:num_requests_running", labels, running, t))
            add("vllm:num_requests_waiting", "gauge", series("vllm:num_requests_waiting", labels, waiting, t))
            add(kv_name, "gauge", series(kv_name, labels, kv, t))
            add("vllm:prompt_tokens", "counter", series("vllm:prompt_tokens_total", labels, prompt * i, t))
            add("vllm:generation_tokens", "counter", series("vllm:generation_tokens_total", labels, gen * i, t))
            add("vllm:request_success", "counter",
                series("vllm:request_success_total", {**labels, "finished_reason": "stop"}, reqs * i, t))
            for le, per_second in TTFT_BUCKETS:
                add("vllm:time_to_first_token_seconds", "histogram",
                    series("vllm:time_to_first_token_seconds_bucket", {**labels, "le": le}, per_second * i, t))
    other = {"namespace": NS, "model_name": "another-model", "instance": "10.0.0.9:8000"}
    router = {"namespace": NS, "fleet": "front", "tier": TIER}
    for i in range(SECONDS + 1):
        add("vllm:num_requests_running", "gauge", series("vllm:num_requests_running", other, 50, t0 + i))
        add("tokenfleet_router_tier_waiting_requests", "gauge",
            series("tokenfleet_router_tier_waiting_requests", router, 2, t0 + i))
    out = []
    for family, (kind, lines) in families.items():
        out.append(f"# TYPE {family} {kind}")
        out += lines
    return "\n".join(out) + "\n# EOF\n"


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    """Prometheus over blocks of ``openmetrics``; yields (url, the time to query at)."""
    workdir = tmp_path_factory.mktemp("prometheus")
    t0 = float(int(time.time()) - 3600)
    storage = backfill(openmetrics(t0), workdir)
    with prometheus(workdir, storage=storage) as (url, _):
        yield url, t0 + SECONDS


def test_signals_per_replica_are_exact_means_and_rates_with_the_kv_metric_falling_back_per_replica(backfilled):
    url, at = backfilled
    signals = EngineMetrics(MetricsSettings(url, window="1m")).read(TierRef(NS, TIER, MODEL), at=at)
    by_name = {r.name: r for r in signals.replicas}
    a, b, c = by_name["10.0.0.1:8000"], by_name["10.0.0.2:8000"], by_name["10.0.0.3:8000"]
    assert (a.running, a.waiting, a.kv_cache_usage) == (3, 1, 0.5)
    assert (b.running, b.waiting, b.kv_cache_usage) == (5, 3, 0.7)  # only vllm:gpu_cache_usage_perc
    assert a.prompt_tokens_per_second == pytest.approx(100) and b.prompt_tokens_per_second == pytest.approx(200)
    assert a.generation_tokens_per_second == pytest.approx(20) and b.requests_per_second == pytest.approx(1.0)
    assert a.age_seconds == 0 and b.age_seconds == 0
    assert c.age_seconds == SECONDS - STALE_AFTER  # still in the lookback, but its newest sample is old
    assert "10.0.0.9:8000" not in by_name  # another model's replica is not this tier's
    # rank 0.95 x 40/s falls in (0.5, 1.0] holding 20 of 40: 0.5 + 0.5 x (38 - 20) / 20
    assert signals.ttft_p95_seconds == pytest.approx(0.95)
    assert signals.router_waiting == 2


def test_a_replica_with_an_old_newest_sample_is_left_out_of_the_decision(backfilled):
    url, at = backfilled
    signals = EngineMetrics(MetricsSettings(url, window="1m")).read(TierRef(NS, TIER, MODEL), at=at)
    policy = ScalingPolicy(max_metric_age=30, max_replicas=8)
    load = aggregate(signals, 3, policy)
    assert (load.reporting, load.silent, load.running, load.waiting) == (2, 1, 8, 4)
    decision = desired_replicas(3, signals, policy, now=0.0)
    assert decision.queue_depth == 4 and decision.kv_cache_usage == pytest.approx(0.6)


def test_the_replica_label_and_selectors_are_configurable(backfilled):
    url, at = backfilled
    settings = MetricsSettings(url, engine_selector='model_name="{model}"', replica_label="namespace",
                               router_selector='fleet="front",tier="{tier}"')
    signals = EngineMetrics(settings).read(TierRef("elsewhere", TIER, MODEL), at=at)
    assert [r.name for r in signals.replicas] == [NS]  # every replica of the model under one label value
    assert signals.replicas[0].running == 3 + 5  # c's mean window has no samples left
    assert signals.router_waiting == 2


def test_a_selector_that_matches_nothing_gives_no_replicas_and_the_policy_holds(backfilled):
    url, at = backfilled
    signals = EngineMetrics(MetricsSettings(url)).read(TierRef("other-namespace", TIER, MODEL), at=at)
    assert signals.replicas == () and signals.ttft_p95_seconds is None and signals.router_waiting == 0
    decision = desired_replicas(2, signals, ScalingPolicy(), now=0.0)
    assert (decision.replicas, decision.reason) == (2, "MetricsUnavailable")


def test_prometheus_that_does_not_answer_gives_no_signals():
    settings = MetricsSettings(f"http://127.0.0.1:{free_port()}", timeout_seconds=2)
    assert EngineMetrics(settings).read(TierRef(NS, TIER, MODEL)) is None


def test_bad_settings_are_refused_with_the_setting_named():
    with pytest.raises(ValueError, match="replica label"):
        MetricsSettings("http://x", replica_label="pod-name")
    with pytest.raises(ValueError, match="window"):
        MetricsSettings("http://x", window="one minute")
    with pytest.raises(ValueError, match="placeholder"):
        MetricsSettings("http://x", engine_selector='pod=~"{pod}-.*"')
    env = {"TOKENFLEET_METRICS_REPLICA_LABEL": "pod", "TOKENFLEET_METRICS_WINDOW": "30s"}
    assert MetricsSettings.from_env("http://x", env).replica_label == "pod"
