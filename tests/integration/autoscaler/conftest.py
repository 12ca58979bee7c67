"""Fixtures of the autoscaler's integration tests: the API emulator, the real operator, engines, Prometheus."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.integration.autoscaler.prom import binaries, prometheus
from tests.integration.operator.operator_harness import (  # noqa: F401 (the hook records reports for ns)
    Cluster,
    OperatorProcess,
    emulated_cluster,
    namespace_per_test,
    pytest_runtest_makereport,
)
from tests.support.procs import free_port, running, tokenfleet_cmd

MODEL = "llama-8b"
INTERVAL = "1"  # seconds between decisions
WINDOW = "5s"  # PromQL range of means and rates (1 s scrapes)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    """The emulator with the repository's CRDs, and a reader over its HTTP API."""
    binaries()
    with emulated_cluster(tmp_path_factory.mktemp("autoscaler")) as emulated:
        yield emulated


@pytest.fixture(scope="module")
def prometheus_port() -> int:
    """One address for every test's Prometheus, so that the operator (started once) reads them all."""
    return free_port()


@pytest.fixture(scope="module")
def operator(cluster: Cluster, prometheus_port: int, tmp_path_factory) -> OperatorProcess:
    """``tokenfleet operator`` deciding every second from Prometheus at ``prometheus_port``."""
    env = {
        "TOKENFLEET_PROMETHEUS_URL": f"http://127.0.0.1:{prometheus_port}",
        "TOKENFLEET_AUTOSCALE_INTERVAL_SECONDS": INTERVAL,
        "TOKENFLEET_METRICS_WINDOW": WINDOW,
    }
    log = Path(tmp_path_factory.mktemp("operator-log")) / "operator.log"
    with OperatorProcess(cluster.kubeconfig, log, env) as proc:
        yield proc


@pytest.fixture
def ns(cluster: Cluster, operator: OperatorProcess, request) -> str:
    """A fresh namespace per test; the operator's log tail is printed when the test fails."""
    yield from namespace_per_test(cluster, operator, request, "scale", tail=8000)


@contextlib.contextmanager
def engines(tmp_path: Path, count: int, *args: str):
    """``count`` engine emulators serving MODEL on an L4; yields their host:port addresses."""
    with contextlib.ExitStack() as stack:
        addresses = []
        for _ in range(count):
            port = free_port()
            cmd = tokenfleet_cmd("emulate-engine", "--port", str(port), "--model", MODEL, "--gpu-type", "nvidia-l4",
                                 *args)
            stack.enter_context(running(cmd, ready_url=f"http://127.0.0.1:{port}/health",
                                        log_path=tmp_path / f"engine-{port}.log"))
            addresses.append(f"127.0.0.1:{port}")
        yield addresses


@contextlib.contextmanager
def scraped(tmp_path: Path, port: int, namespace: str, addresses: list[str]):
    """Prometheus on ``port`` scraping the engines every second, labelled like a Kubernetes scrape."""
    with prometheus(tmp_path / "prometheus", [(a, {"namespace": namespace}) for a in addresses], port=port) as (
            url, proc):
        yield proc


def load(address: str, requests: int, max_tokens: int) -> list[threading.Thread]:
    """Send ``requests`` completions at once (each in a thread, errors ignored); returns the threads."""
    body = json.dumps({"model": MODEL, "prompt": "Tell me about batching. " * 20, "max_tokens": max_tokens}).encode()

    def one() -> None:
        req = urllib.request.Request(f"http://{address}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        with contextlib.suppress(OSError):
            urllib.request.urlopen(req, timeout=120).read()

    threads = [threading.Thread(target=one, daemon=True) for _ in range(requests)]
    for t in threads:
        t.start()
    return threads


def speed_up(address: str, time_scale: float) -> None:
    """Make an engine emulator run ``time_scale`` times faster from now on (drains its load)."""
    req = urllib.request.Request(f"http://{address}/_emulator/config", data=json.dumps(
        {"time_scale": time_scale}).encode(), headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def metric(operator: OperatorProcess, name: str, **labels: str) -> float | None:
    """The value of one series on the operator's /metrics (None when absent)."""
    pattern = re.compile(rf'^{re.escape(name)}\{{(?P<labels>[^}}]*)\}} (?P<value>\S+)$')
    for line in operator.metrics().splitlines():
        m = pattern.match(line)
        if m and all(f'{k}="{v}"' in m["labels"] for k, v in labels.items()):
            return float(m["value"])
    return None


def decisions(operator: OperatorProcess, namespace: str, tier: str, reason: str) -> float:
    """tokenfleet_operator_scaling_decisions_total for one tier and reason."""
    found = metric(operator, "tokenfleet_operator_scaling_decisions_total", namespace=namespace, tier=tier,
                   reason=reason)
    return found or 0.0
