"""Pure rules of the demo's kubelet: which local process runs a Deployment's pod, and which pods to start or stop.

Nothing here starts anything. ``local_process`` maps the operator's rendered containers onto
processes of this machine:

- ``vllm serve`` (a ModelTier's engine) -> ``tokenfleet emulate-engine`` configured from the
  ModelTier (``tokenfleet.engine.settings.tier_args``), since vLLM needs a GPU;
- ``tokenfleet <command> ...`` (router, cache) -> the same command with this interpreter, its
  ``--port`` moved to a free local port on 127.0.0.1 (``--host``) and paths under a ConfigMap mount moved into the pod's
  directory, where the ConfigMap's files are written with in-cluster Service URLs
  (``http://<svc>.<ns>.svc:<port>``) rewritten to the local proxy of that Service.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tokenfleet.engine.settings import tier_args

# <service>.<namespace>.svc[.cluster.local]:<port>, as the renderer writes Service URLs.
SERVICE_ADDRESS = re.compile(
    r"(?P<svc>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.(?P<ns>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)"
    r"\.svc(?:\.cluster\.local)?:(?P<port>\d+)"
)
TIER_LABEL = "tokenfleet.io/modeltier"

Resolver = Callable[[str, str, int], str]  # (service, namespace, port) -> "127.0.0.1:<local port>"


class UnsupportedWorkload(ValueError):
    """A Deployment whose container the demo cannot run as a local process."""


class NotYet(UnsupportedWorkload):
    """A pod that needs an object (ConfigMap, ModelTier) the API does not hold yet: try again later."""


@dataclass(frozen=True)
class EngineOptions:
    """How the demo runs engine emulators (see ``tokenfleet emulate-engine --help``)."""

    startup_delay: float = 3.0  # seconds of "loading weights" before /health answers 200
    time_scale: float = 1.0


@dataclass(frozen=True)
class PodProcess:
    """What to run for one pod: argv, environment, the local port, readiness path, files to write first."""

    argv: tuple[str, ...]
    env: dict[str, str]
    port: int
    ready_path: str
    files: dict[str, str] = field(default_factory=dict)  # path relative to the pod directory -> content


def rewrite_service_urls(text: str, resolve: Resolver) -> str:
    """Replace every in-cluster Service address in ``text`` by the local address ``resolve`` gives."""
    return SERVICE_ADDRESS.sub(lambda m: resolve(m["svc"], m["ns"], int(m["port"])), text)


def template_hash(deployment: dict) -> str:
    """A short hash of the pod template: pods from another template belong to an older rollout."""
    template = (deployment.get("spec") or {}).get("template") or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def first_container(deployment: dict) -> dict:
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    if not containers:
        raise UnsupportedWorkload(f"Deployment {deployment['metadata']['name']}: no containers")
    return containers[0]


def container_port(container: dict) -> tuple[int, str | None]:
    """(containerPort, name) of the container's first port."""
    ports = container.get("ports") or []
    if not ports:
        raise UnsupportedWorkload(f"container {container.get('name')}: no ports")
    return int(ports[0]["containerPort"]), ports[0].get("name")


def ready_path(container: dict) -> str:
    """The readiness probe's HTTP path ('/' without one)."""
    probe = container.get("readinessProbe") or container.get("startupProbe") or {}
    return (probe.get("httpGet") or {}).get("path") or "/"


def replace_flag(args: list[str], flag: str, value: str) -> list[str]:
    """``args`` with the value after ``flag`` (or in ``flag=value``) replaced; the flag is added if absent."""
    out, found, skip = [], False, False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == flag and i + 1 < len(args):
            out += [flag, value]
            found = skip = True
        elif arg.startswith(flag + "="):
            out.append(f"{flag}={value}")
            found = True
        else:
            out.append(arg)
    return out if found else out + [flag, value]


def config_map_files(deployment: dict, container: dict, config_maps: dict[str, dict],
                     resolve: Resolver) -> tuple[dict[str, str], dict[str, str]]:
    """(files to write, mount path -> pod-relative directory) for the container's ConfigMap volumes."""
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes") or []}
    files: dict[str, str] = {}
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"]) or {}
        source = volume.get("configMap")
        if source is None:
            continue
        cm = config_maps.get(source["name"])
        if cm is None:
            raise NotYet(f"ConfigMap {source['name']} (volume {mount['name']}) not found yet")
        data = cm.get("data") or {}
        items = source.get("items") or [{"key": k, "path": k} for k in sorted(data)]
        for item in items:
            files[f"{mount['name']}/{item['path']}"] = rewrite_service_urls(data.get(item["key"], ""), resolve)
        mounts[mount["mountPath"].rstrip("/")] = mount["name"]
    return files, mounts


def container_env(container: dict, resolve: Resolver) -> dict[str, str]:
    """Literal environment values (Service URLs rewritten); values from Secrets or fields are left out."""
    return {e["name"]: rewrite_service_urls(str(e["value"]), resolve)
            for e in container.get("env") or [] if "value" in e}


def engine_process(deployment: dict, tier_spec, python: str, port: int, options: EngineOptions) -> PodProcess:
    """``vllm serve`` -> ``tokenfleet emulate-engine`` with the ModelTier's model, GPU and batch settings."""
    labels = deployment["metadata"].get("labels") or {}
    tier = labels.get(TIER_LABEL)
    if tier is None:
        raise UnsupportedWorkload(f"Deployment {deployment['metadata']['name']}: runs vllm without the label "
                                  f"{TIER_LABEL}")
    if tier_spec is None:
        raise NotYet(f"Deployment {deployment['metadata']['name']}: its ModelTier {tier} is not known yet")
    args = tier_args(tier, tier_spec, host="127.0.0.1", port=port, startup_delay=options.startup_delay,
                     time_scale=options.time_scale)
    return PodProcess((python, "-m", "tokenfleet", "emulate-engine", *args), {}, port,
                      ready_path(first_container(deployment)))


def tokenfleet_process(deployment: dict, container: dict, python: str, port: int, pod_dir: Path,
                       config_maps: dict[str, dict], resolve: Resolver) -> PodProcess:
    """``tokenfleet <command> ...`` -> the same command here, on ``port``, its ConfigMaps as local files."""
    files, mounts = config_map_files(deployment, container, config_maps, resolve)
    args = [str(a) for a in container.get("args") or []]
    local = []
    for arg in args:
        for mount_path, volume in mounts.items():
            if arg == mount_path or arg.startswith(mount_path + "/"):
                arg = str(pod_dir / volume) + arg[len(mount_path):]
                break
        local.append(arg)
    local = replace_flag(replace_flag(local, "--port", str(port)), "--host", "127.0.0.1")  # never beyond loopback
    return PodProcess((python, "-m", "tokenfleet", *local), container_env(container, resolve), port,
                      ready_path(container), files)


def local_process(deployment: dict, *, python: str, port: int, pod_dir: Path, resolve: Resolver,
                  tier_spec=None, config_maps: dict[str, dict] | None = None,
                  engine: EngineOptions = EngineOptions()) -> PodProcess:
    """The local process for one pod of ``deployment``; raises UnsupportedWorkload when there is none."""
    container = first_container(deployment)
    command = [str(c) for c in container.get("command") or []]
    if command[:2] == ["vllm", "serve"]:
        return engine_process(deployment, tier_spec, python, port, engine)
    if command[:1] == ["tokenfleet"]:
        return tokenfleet_process(deployment, container, python, port, pod_dir, config_maps or {}, resolve)
    raise UnsupportedWorkload(f"Deployment {deployment['metadata']['name']}: the demo runs only vllm and "
                              f"tokenfleet containers, not {' '.join(command) or container.get('image')}")


# --------------------------------------------------------------------------- replica sets


@dataclass(frozen=True)
class PodView:
    """What the replica planning needs to know of a pod."""

    name: str
    template: str  # template_hash of the Deployment it was started from
    ready: bool
    started: float  # any monotonic clock


def plan_replicas(desired: int, template: str, pods: list[PodView]) -> tuple[int, list[str]]:
    """(pods to start, names of pods to stop) to move ``pods`` towards ``desired`` pods of ``template``.

    Like a Deployment's RollingUpdate with maxSurge 1-or-more and maxUnavailable 0: pods of an
    older template stop once enough current pods are ready to replace them. Surplus current pods
    stop not-ready first, then newest first (ReplicaSet's scale-down order).
    """
    current = [p for p in pods if p.template == template]
    old = [p for p in pods if p.template != template]
    start = max(0, desired - len(current))
    surplus = sorted(current, key=lambda p: (p.ready, -p.started))[: max(0, len(current) - desired)]
    ready_current = sum(1 for p in current if p.ready and p not in surplus)
    keep_old = max(0, desired - ready_current)
    old_order = sorted(old, key=lambda p: (p.ready, -p.started))  # stop unready and newer ones first
    stop_old = old_order[: max(0, len(old) - keep_old)]
    return start, [p.name for p in surplus + stop_old]


def selector_matches(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    """A Service's equality selector against pod labels; an empty selector selects nothing (as kube-proxy)."""
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def target_port(service_port: dict, container_port_number: int, container_port_name: str | None) -> bool:
    """Whether a Service port's targetPort (number or name) is the pod's container port."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, str) and not target.isdigit():
        return target == container_port_name
    return int(target) == container_port_number
