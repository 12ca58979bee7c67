"""Fixtures of the chart tests: the real helm, kubectl and promtool binaries, renders cached per scenario."""

from __future__ import annotations

import copy
import functools
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.procs import REPO, tokenfleet_cmd, tool

CHART = REPO / "charts" / "tokenfleet"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: renders are large
RELEASE = "tokenfleet"
NAMESPACE = "tokenfleet-system"


def need(name: str) -> str:
    """Path of a binary the tests cannot run without (installed by scripts/bootstrap.sh --test)."""
    path = tool(name)
    if path is None:
        pytest.fail(f"{name} not found in .tools/bin or on PATH: run scripts/bootstrap.sh --test")
    return path


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, **kwargs)


@functools.lru_cache(maxsize=None)
def _template(values: tuple[str, ...], sets: tuple[str, ...]) -> tuple[subprocess.CompletedProcess, tuple]:
    cmd = [need("helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values:
        cmd += ["--values", path]
    for item in sets:
        cmd += ["--set", item]
    result = run(cmd)
    docs = tuple(d for d in yaml.load_all(result.stdout, Loader=LOADER) if d) if result.returncode == 0 else ()
    return result, docs


def helm_template(*values: str | Path, sets: tuple[str, ...] = ()) -> list[dict]:
    """Objects of `helm template` with these values files and --set items; fails the test on an error."""
    result, docs = _template(tuple(str(v) for v in values), tuple(sets))
    assert result.returncode == 0, result.stderr
    return copy.deepcopy(list(docs))  # a fresh copy per caller


def helm_template_error(*values: str | Path, sets: tuple[str, ...] = ()) -> str:
    """stderr of a `helm template` that must fail."""
    result, _ = _template(tuple(str(v) for v in values), tuple(sets))
    assert result.returncode != 0, "helm template succeeded but should have failed"
    return result.stderr


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in of_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def scenario_id(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")


@pytest.fixture(params=CI_VALUES, ids=scenario_id)
def scenario(request) -> tuple[str, list[dict]]:
    """Each ci/*-values.yaml scenario: (name, rendered objects)."""
    return scenario_id(request.param), helm_template(request.param)


@pytest.fixture
def default_render() -> list[dict]:
    return helm_template()


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    """(kind/name, pod spec) of every workload among ``docs``."""
    out = []
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            out.append((f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]))
    return out


def lockdown_problems(pod: dict) -> list[str]:
    """What a pod spec lacks to be locked down: the restricted Pod Security Standard plus a read-only root.

    Every container must run as non-root (pod or container level), with seccomp RuntimeDefault,
    no privilege escalation, all capabilities dropped and none added, a read-only root filesystem,
    a writable emptyDir at /tmp, and resource requests.
    """
    problems = []
    pod_ctx = pod.get("securityContext") or {}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for bad in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(bad):
            problems.append(f"pod sets {bad}")
    for volume in volumes.values():
        if "hostPath" in volume:
            problems.append(f"volume {volume['name']} is a hostPath")
    for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
        name = container["name"]
        ctx = container.get("securityContext") or {}

        def setting(key):
            return ctx.get(key, pod_ctx.get(key))

        if setting("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if setting("runAsUser") == 0:
            problems.append(f"{name}: runs as UID 0")
        if (setting("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: no RuntimeDefault seccomp profile")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if ctx.get("privileged"):
            problems.append(f"{name}: privileged")
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
        caps = ctx.get("capabilities") or {}
        if caps.get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities not dropped (drop: {caps.get('drop')})")
        if caps.get("add"):
            problems.append(f"{name}: adds capabilities {caps['add']}")
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
        if "emptyDir" not in volumes.get(mounts.get("/tmp"), {}):
            problems.append(f"{name}: no writable emptyDir at /tmp")
        if not (container.get("resources") or {}).get("requests"):
            problems.append(f"{name}: no resource requests")
        image = container["image"]
        if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            problems.append(f"{name}: image {image} is not pinned")
    return problems


@pytest.fixture(scope="session")
def operator_workloads() -> list[dict]:
    """What the operator creates for examples/, as `tokenfleet render -f examples/` prints it."""
    result = run(tokenfleet_cmd("render", "-f", "examples/"))
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.load_all(result.stdout, Loader=LOADER) if d]
