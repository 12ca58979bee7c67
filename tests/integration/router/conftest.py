"""Fixtures of the router's integration tests: emulated engines and routers started as real processes."""

from __future__ import annotations

import pytest

from tests.support.engines import emulator, router

KEYS = {"sk-alpha": "alpha", "sk-beta": "beta"}


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("router")


@pytest.fixture(scope="module")
def engines(logs):
    """A weak cheap tier and a strong expensive one, 50x faster than real time."""
    with emulator(logs, "--model", "small", "--parameters-b", "1", "--capability", "0.3", "--time-scale", "50") \
            as small, emulator(logs, "--model", "big", "--gpu-type", "nvidia-h100", "--capability", "0.95",
                               "--time-scale", "50") as big:
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
