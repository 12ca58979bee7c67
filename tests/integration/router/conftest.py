"""Fixtures of the router's integration tests: emulated engines and routers started as real processes."""

from __future__ import annotations

import contextlib
import json
import urllib.request

import pytest

from tests.support.procs import free_port, running, tokenfleet_cmd

KEYS = {"sk-alpha": "alpha", "sk-beta": "beta"}


@contextlib.contextmanager
def emulator(log_dir, name: str, *args: str):
    """``tokenfleet emulate-engine`` serving model ``name``; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = tokenfleet_cmd("emulate-engine", "--port", str(port), "--model", name, *args)
    with running(cmd, ready_url=base + "/health", log_path=log_dir / f"engine-{name}-{port}.log"):
        yield base


@contextlib.contextmanager
def router(log_dir, *args: str):
    """``tokenfleet router`` with ``args``; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = tokenfleet_cmd("router", "--host", "127.0.0.1", "--port", str(port), *args)
    with running(cmd, ready_url=base + "/readyz", log_path=log_dir / f"router-{port}.log"):
        yield base


def stats(base: str) -> dict:
    """The emulator's call counters."""
    with urllib.request.urlopen(base + "/_emulator/stats", timeout=5) as resp:
        return json.load(resp)


def calls(base: str) -> int:
    return stats(base)["total"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("router")


@pytest.fixture(scope="module")
def engines(logs):
    """A weak cheap tier and a strong expensive one, 50x faster than real time."""
    with emulator(logs, "small", "--parameters-b", "1", "--capability", "0.3", "--time-scale", "50") as small, \
            emulator(logs, "big", "--gpu-type", "nvidia-h100", "--capability", "0.95", "--time-scale", "50") as big:
        yield {"small": small, "big": big}


@pytest.fixture(scope="module")
def keys_file(logs):
    path = logs / "keys"
    path.write_text("".join(f"{k}={t}\n" for k, t in KEYS.items()))
    return path


@pytest.fixture(scope="module")
def fleet(logs, engines, keys_file):
    """A cascading router in front of both tiers, with API keys; yields its base URL."""
    with router(logs, "--tier", f"small={engines['small']}", "--tier", f"big={engines['big']}",
                "--api-keys", str(keys_file), "--fleet", "chat") as base:
        yield base
