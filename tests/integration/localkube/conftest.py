"""Fixtures of the emulator's own tests: a LocalKube with the repo's CRDs, real clients pointed at it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

import pytest
import yaml
from kubernetes import client, config

from tests.support.procs import REPO, tool
from tokenfleet.localkube import LocalKube

CRDS = REPO / "crds"
TIERS = ("tokenfleet.io", "v1alpha1", "modeltiers")


@pytest.fixture(scope="session")
def crd_docs() -> list[dict]:
    """The repository's CRDs, parsed once."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for path in sorted(CRDS.glob("*.yaml")) for doc in yaml.load_all(path.read_text(), Loader=loader)]


@pytest.fixture
def kube(crd_docs):
    """A fresh emulator with the repository's CRDs registered; bookmarks every 0.2 s."""
    with LocalKube(bookmark_interval=0.2) as kube:
        for doc in crd_docs:
            kube.apply(doc)
        yield kube


@pytest.fixture
def kubeconfig(kube: LocalKube, tmp_path: Path) -> Path:
    return kube.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def api(kubeconfig: Path) -> client.ApiClient:
    """A kubernetes.client ApiClient for the emulator (its own configuration, not $KUBECONFIG's)."""
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api):
    return client.AppsV1Api(api)


@pytest.fixture
def custom(api):
    return client.CustomObjectsApi(api)


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run the real kubectl against the emulator, with a private discovery cache."""
    binary = tool("kubectl")
    if binary is None:
        pytest.fail("kubectl not found in .tools/bin or on PATH: run scripts/bootstrap.sh --test")

    def run(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "kcache"), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, input=input, cwd=REPO, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done
    return run
