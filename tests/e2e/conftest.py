"""Fixtures of the e2e tests: a real cluster from $KUBECONFIG (opt-in with TOKENFLEET_E2E=1).

The operator runs here as a local process (``tokenfleet operator``, every namespace) against the
cluster; the CRDs are applied from crds/. Do not run it beside an installed tokenfleet operator.
Deployments become ready only where their images can run (GPUs for vLLM): set
TOKENFLEET_E2E_WORKLOADS_READY=1 on such a cluster to also wait for Ready=True.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kubernetes import config

from tests.integration.operator.operator_harness import (  # noqa: F401 (the hook records reports for ns)
    CRDS,
    Cluster,
    OperatorProcess,
    namespace_per_test,
    pytest_runtest_makereport,
)
from tests.support.procs import tool
from tokenfleet.kube import Kube

ENABLED = os.environ.get("TOKENFLEET_E2E") == "1" and bool(os.environ.get("KUBECONFIG"))


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    if not ENABLED:
        pytest.skip("e2e: set KUBECONFIG and TOKENFLEET_E2E=1 to run against a real cluster")
    if tool("kubectl") is None:
        pytest.skip("kubectl is not installed")
    kubeconfig = Path(os.environ["KUBECONFIG"])
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    real = Cluster(kubeconfig=kubeconfig, kube=Kube(api_client),
                   workloads_start=os.environ.get("TOKENFLEET_E2E_WORKLOADS_READY") == "1")
    real.kubectl("apply", "-f", str(CRDS))
    for crd in CRDS.glob("*.yaml"):
        real.kubectl("wait", "--for=condition=Established", "-f", str(crd), "--timeout=60s")
    yield real
    for ns in real.namespaces:
        real.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
    api_client.close()


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory) -> OperatorProcess:
    env = {"TOKENFLEET_IMAGE": os.environ["TOKENFLEET_IMAGE"]} if os.environ.get("TOKENFLEET_IMAGE") else {}
    with OperatorProcess(cluster.kubeconfig, Path(tmp_path_factory.mktemp("e2e-log")) / "operator.log", env) as proc:
        yield proc


@pytest.fixture
def ns(cluster: Cluster, operator: OperatorProcess, request) -> str:
    """A fresh namespace per test (deleted at the end); the operator's log tail is printed when a test fails."""
    yield from namespace_per_test(cluster, operator, request, "tf-e2e")
