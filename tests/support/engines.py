"""Engine emulators, routers and cache services started as real processes, for integration tests."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from pathlib import Path

from tests.support.procs import free_port, running, tokenfleet_cmd


@contextlib.contextmanager
def emulator(log_dir: Path, *args: str, ready_path: str = "/health"):
    """``tokenfleet emulate-engine`` with ``args``; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = tokenfleet_cmd("emulate-engine", "--port", str(port), *args)
    with running(cmd, ready_url=base + ready_path, log_path=log_dir / f"engine-{port}.log"):
        yield base


@contextlib.contextmanager
def router(log_dir: Path, *args: str):
    """``tokenfleet router`` with ``args``; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = tokenfleet_cmd("router", "--host", "127.0.0.1", "--port", str(port), *args)
    with running(cmd, ready_url=base + "/readyz", log_path=log_dir / f"router-{port}.log"):
        yield base


@contextlib.contextmanager
def cache_service(log_dir: Path, *args: str):
    """``tokenfleet cache`` with ``args``, ready (embedding model loaded); yields (base URL, process)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = tokenfleet_cmd("cache", "--host", "127.0.0.1", "--port", str(port), *args)
    with running(cmd, ready_url=base + "/readyz", timeout=120, log_path=log_dir / f"cache-{port}.log") as proc:
        yield base, proc


def stats(base: str) -> dict:
    """An emulator's call counters (``GET /_emulator/stats``)."""
    with urllib.request.urlopen(base + "/_emulator/stats", timeout=5) as resp:
        return json.load(resp)


def calls(base: str) -> int:
    """Generation requests an emulator has received."""
    return stats(base)["total"]


def metric_values(base: str) -> dict[str, float]:
    """Every sample of ``GET /metrics`` as {'name{labels}': value}."""
    out = {}
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
        body = resp.read().decode()
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out
