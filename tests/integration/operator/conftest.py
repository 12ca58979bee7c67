"""Fixtures of the operator's integration tests: one emulator and one operator process per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.operator.operator_harness import (  # noqa: F401 (the hook records reports for ns)
    Cluster,
    OperatorProcess,
    emulated_cluster,
    namespace_per_test,
    pytest_runtest_makereport,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    """The emulator with the repository's CRDs, and a reader over its HTTP API."""
    with emulated_cluster(tmp_path_factory.mktemp("operator")) as emulated:
        yield emulated


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory) -> OperatorProcess:
    """``tokenfleet operator`` watching every namespace of the emulator; its log is shown on failure."""
    with OperatorProcess(cluster.kubeconfig, Path(tmp_path_factory.mktemp("operator-log")) / "operator.log") as proc:
        yield proc


@pytest.fixture
def ns(cluster: Cluster, operator: OperatorProcess, request) -> str:
    """A fresh namespace per test; the operator's log tail is printed when the test fails."""
    yield from namespace_per_test(cluster, operator, request, "t")
