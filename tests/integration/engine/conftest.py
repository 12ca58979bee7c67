"""Fixtures of the engine emulator's integration tests: emulators started as real processes."""

from __future__ import annotations

import pytest

from tests.support.engines import emulator


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """An 8B model on an H100, served as 'small' (and the alias 'small-alias'), 20x faster than real time."""
    with emulator(tmp_path_factory.mktemp("engine"), "--model", "small", "--model", "small-alias",
                  "--gpu-type", "nvidia-h100", "--capability", "0.5", "--time-scale", "20") as base:
        yield base
