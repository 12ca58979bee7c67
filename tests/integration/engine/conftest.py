"""Fixtures of the engine emulator's integration tests: emulators started as real processes."""

from __future__ import annotations

import contextlib

import pytest

from tests.support.procs import free_port, running, tokenfleet_cmd


@contextlib.contextmanager
def emulator(tmp_path, *args: str, ready_path: str = "/health"):
    """Start ``tokenfleet emulate-engine`` with ``args``; yield its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = tokenfleet_cmd("emulate-engine", "--port", str(port), *args)
    with running(cmd, ready_url=base + ready_path, log_path=tmp_path / f"engine-{port}.log"):
        yield base


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """An 8B model on an H100, served as 'small' (and the alias 'small-alias'), 20x faster than real time."""
    with emulator(tmp_path_factory.mktemp("engine"), "--model", "small", "--model", "small-alias",
                  "--gpu-type", "nvidia-h100", "--capability", "0.5", "--time-scale", "20") as base:
        yield base
