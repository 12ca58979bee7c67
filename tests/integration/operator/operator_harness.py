"""Shared by the operator's integration and e2e tests: the cluster acted on, the operator process, waits."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from kubernetes import config

from tests.support.procs import REPO, free_port, stop, tokenfleet_cmd, tool, wait_http
from tokenfleet import API_VERSION
from tokenfleet.kube import Kube
from tokenfleet.localkube import LocalKube

EXAMPLES = REPO / "examples"
CRDS = REPO / "crds"
WAIT = 20.0  # seconds the operator gets to converge: a deadline for the wait, not a timing assertion
MANAGED = "app.kubernetes.io/managed-by=tokenfleet-operator"
CHILD_KINDS = (("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "ConfigMap"))
OUR_KINDS = ("ModelTier", "CachePolicy", "InferenceFleet")
API_VERSIONS = {**{kind: api for api, kind in CHILD_KINDS}, **{kind: API_VERSION for kind in OUR_KINDS}}


def wait_for(predicate: Callable[[], object], what: str, timeout: float = WAIT, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {value!r}")


@dataclass
class Cluster:
    """Where the tests act: the emulator (``emulator`` set) or a real cluster from $KUBECONFIG."""

    kubeconfig: Path
    kube: Kube  # reads go through the API, as any client's would
    emulator: object | None = None  # tokenfleet.localkube.LocalKube
    workloads_start: bool = True  # whether Deployments become ready (not on a real cluster without GPUs)
    namespaces: list[str] = field(default_factory=list)

    # ------------------------------------------------------------ acting like a user

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        cmd = [tool("kubectl") or "kubectl", "--kubeconfig", str(self.kubeconfig), *args]
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd[3:])} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def apply(self, namespace: str, docs: list[dict] | str | Path) -> str:
        """``kubectl apply`` of a file, a directory or documents into ``namespace``."""
        if isinstance(docs, Path):
            return self.kubectl("apply", "--validate=false", "-n", namespace, "-f", str(docs))
        text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs)
        return self.kubectl("apply", "--validate=false", "-n", namespace, "-f", "-", stdin=text)

    def merge_patch(self, kind: str, namespace: str, name: str, patch: dict) -> str:
        return self.kubectl("patch", kind.lower(), name, "-n", namespace, "--type=merge", "-p", json.dumps(patch))

    def new_namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        # apply, not `kubectl create namespace`: that one sends protobuf, which the emulator does not read
        self.kubectl("apply", "--validate=false", "-f", "-",
                     stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        self.namespaces.append(name)
        return name

    # ------------------------------------------------------------ reading

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.kube.get(API_VERSIONS[kind], kind, namespace, name)

    def condition(self, kind: str, namespace: str, name: str, type_: str = "Ready") -> dict:
        obj = self.get(kind, namespace, name) or {}
        return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), {})

    def children(self, namespace: str) -> set[tuple[str, str]]:
        """(kind, name) of every object in the namespace that carries the operator's managed-by label."""
        return {(kind, obj["metadata"]["name"]) for api_version, kind in CHILD_KINDS
                for obj in self.kube.list(api_version, kind, namespace, label_selector=MANAGED)}

    def events(self, namespace: str, name: str | None = None, reason: str | None = None) -> list[dict]:
        return [e for e in self.kube.list("v1", "Event", namespace)
                if (name is None or e.get("involvedObject", {}).get("name") == name)
                and (reason is None or e.get("reason") == reason)]

    def versions(self, namespace: str) -> dict[tuple[str, str], str]:
        """resourceVersion of every object the operator writes (Deployments: their generation, since a
        real cluster's controllers write Deployment status on their own)."""
        out = {}
        for kind in OUR_KINDS:
            for obj in self.kube.list(API_VERSION, kind, namespace):
                out[(kind, obj["metadata"]["name"])] = obj["metadata"].get("resourceVersion")
        for api_version, kind in CHILD_KINDS:
            for obj in self.kube.list(api_version, kind, namespace, label_selector=MANAGED):
                md = obj["metadata"]
                out[(kind, md["name"])] = md.get("generation") if kind == "Deployment" else md.get("resourceVersion")
        return out

    def write_count(self, namespace: str) -> int | None:
        """Writes the emulator counted in ``namespace`` since its last reset (None on a real cluster)."""
        return self.emulator.write_count(namespace=namespace) if self.emulator is not None else None


class OperatorProcess:
    """``tokenfleet operator`` in a subprocess, as in production: started, restarted, stopped by tests."""

    def __init__(self, kubeconfig: Path, log_path: Path, env: dict | None = None) -> None:
        self.kubeconfig, self.log_path = kubeconfig, log_path
        self.metrics_port, self.health_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "TOKENFLEET_METRICS_PORT": str(self.metrics_port),
            "TOKENFLEET_HEALTH_PORT": str(self.health_port),
            "TOKENFLEET_LOG_FORMAT": "plain",
            "PYTHONUNBUFFERED": "1",  # the log is read on failure
            "TOKENFLEET_IMAGE": "example.org/tokenfleet:test",
            "TOKENFLEET_PROMETHEUS_URL": "",  # no autoscaler: replicas are the tests' to move
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> "OperatorProcess":
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start {self.starts} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(tokenfleet_cmd("operator"), stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        try:
            wait_http(f"http://127.0.0.1:{self.health_port}/healthz", timeout=30, proc=self.proc)
        except (RuntimeError, TimeoutError) as err:
            self.stop()  # never leave a half-started operator behind
            raise RuntimeError(f"operator did not start: {err}\n{self.log_tail()}") from None
        return self

    def __enter__(self) -> "OperatorProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


# ---------------------------------------------------------------------- fixtures' bodies (conftests call these)


@contextlib.contextmanager
def emulated_cluster(directory: Path, crds: Path = CRDS) -> Iterator[Cluster]:
    """The API emulator with ``crds`` registered, its kubeconfig in ``directory``, a reader over its HTTP API."""
    if tool("kubectl") is None:
        pytest.skip("kubectl is not installed (scripts/bootstrap.sh --test puts it in .tools/bin)")
    with LocalKube() as emulator:
        emulator.apply_crds(crds)
        kubeconfig = emulator.write_kubeconfig(directory / "kubeconfig")
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        try:
            yield Cluster(kubeconfig=kubeconfig, kube=Kube(api_client), emulator=emulator)
        finally:
            api_client.close()


def namespace_per_test(cluster: Cluster, operator: OperatorProcess, request, prefix: str,
                       tail: int = 4000) -> Iterator[str]:
    """A fresh namespace for one test; the operator's log tail is printed when the test fails.

    Needs the ``pytest_runtest_makereport`` hook below in the calling conftest.
    """
    name = cluster.new_namespace(prefix)
    yield name
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"----- operator log (tail) -----\n{operator.log_tail(tail)}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item (``item.rep_call``), for ``namespace_per_test``."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
