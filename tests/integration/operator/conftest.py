"""Fixtures of the operator's integration tests: one emulator and one operator process per module."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import config

from tests.integration.operator.operator_harness import CRDS, Cluster, OperatorProcess
from tests.support.procs import tool
from tokenfleet.kube import Kube
from tokenfleet.localkube import LocalKube


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    """The emulator with the repository's CRDs, and a reader over its HTTP API."""
    if tool("kubectl") is None:
        pytest.skip("kubectl is not installed (scripts/bootstrap.sh --test puts it in .tools/bin)")
    with LocalKube() as emulator:
        emulator.apply_crds(CRDS)
        kubeconfig = emulator.write_kubeconfig(tmp_path_factory.mktemp("operator") / "kubeconfig")
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        yield Cluster(kubeconfig=kubeconfig, kube=Kube(api_client), emulator=emulator)
        api_client.close()


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory) -> OperatorProcess:
    """``tokenfleet operator`` watching every namespace of the emulator; its log is shown on failure."""
    proc = OperatorProcess(cluster.kubeconfig, Path(tmp_path_factory.mktemp("operator-log")) / "operator.log")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def ns(cluster: Cluster, operator: OperatorProcess, request) -> str:
    """A fresh namespace per test; the operator's log tail is printed when the test fails."""
    name = cluster.new_namespace("t")
    yield name
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"----- operator log (tail) -----\n{operator.log_tail()}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
