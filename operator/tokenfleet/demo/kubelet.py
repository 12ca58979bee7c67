"""The demo's kubelet: runs the operator's Deployments as local processes and reports their status.

Every ``interval`` it reads the namespace's Deployments, Services and ConfigMaps through the API
(``tokenfleet.kube.Kube``, the operator's own client), then:

- starts or stops pods (local processes, ``pods.local_process``) towards each Deployment's
  ``spec.replicas`` (``pods.plan_replicas``), restarting a crashed one with a growing back-off;
- probes each pod's readiness path and tells the Service proxy process (``proxy``, its own
  process like kube-proxy) which ready pods each Service port balances over;
- patches each Deployment's status (replicas, updatedReplicas, readyReplicas,
  availableReplicas, observedGeneration, conditions) when it changes, as the Deployment and
  ReplicaSet controllers would;
- writes the Prometheus file-based service discovery targets (one per running pod, with the
  labels a PodMonitor would give: namespace, pod, container, app_kubernetes_io_*);
- records the replica timeline and each pod's lifetime (for the cost of the run).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tokenfleet import API_VERSION
from tokenfleet.api.v1alpha1 import ModelTierSpec
from tokenfleet.demo import pods as rules
from tokenfleet.demo.processes import Child, Processes
from tokenfleet.kube import Kube

log = logging.getLogger("tokenfleet.demo.kubelet")
MAX_BACKOFF = 16.0
READY_RECHECK = 2.0  # seconds between readiness probes of a pod that is ready


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Pod:
    """One replica: its process, port, labels, readiness and lifetime."""

    name: str
    deployment: str
    template: str
    labels: dict[str, str]
    port: int
    container_port: int
    port_name: str | None
    container: str
    process: rules.PodProcess
    child: Child | None = None
    created: float = field(default_factory=time.monotonic)
    ready: bool = False
    ready_at: float | None = None
    checked: float = 0.0
    restarts: int = 0
    restart_at: float | None = None
    stopped: float | None = None

    def view(self) -> rules.PodView:
        return rules.PodView(self.name, self.template, self.ready, self.created)


@dataclass(frozen=True)
class Sample:
    """One point of the replica timeline (seconds since the kubelet started)."""

    t: float
    deployment: str
    desired: int
    running: int
    ready: int


@dataclass(frozen=True)
class Lifetime:
    """A pod's life, for billing: from creation to stop (None: still running)."""

    deployment: str
    pod: str
    created: float
    stopped: float | None


class Kubelet:
    """Runs one namespace's Deployments here; ``await run(stop)`` until ``stop`` is set."""

    def __init__(self, kube: Kube, namespace: str, processes: Processes, workdir: Path, python: str,
                 engine: rules.EngineOptions = rules.EngineOptions(), targets_file: Path | None = None,
                 interval: float = 0.5):
        self.kube, self.namespace, self.processes = kube, namespace, processes
        self.workdir, self.python, self.engine, self.interval = workdir, python, engine, interval
        self.targets_file = targets_file
        self.t0 = time.monotonic()
        self.pods: dict[str, Pod] = {}
        self.endpoints: dict[tuple[str, str, int], list[int]] = {}  # what the proxy process was last told
        self.proxy: Child | None = None
        self.service_ports: dict[tuple[str, str, int], int] = {}
        self.timeline: list[Sample] = []
        self.lifetimes: list[Lifetime] = []
        self.problems: list[str] = []
        self.deployments: dict[str, dict] = {}
        self._patched: dict[str, dict] = {}
        self._targets: list | None = None
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ addresses

    def service_port(self, namespace: str, service: str, port: int) -> int:
        """The local port of a Service port (allocated on first use, stable afterwards)."""
        key = (namespace, service, port)
        if key not in self.service_ports:
            self.service_ports[key] = free_port()
        return self.service_ports[key]

    def resolve(self, service: str, namespace: str, port: int) -> str:
        return f"127.0.0.1:{self.service_port(namespace, service, port)}"

    def service_url(self, service: str, port: int) -> str:
        return f"http://{self.resolve(service, self.namespace, port)}"

    # ------------------------------------------------------------------ loop

    async def run(self, stop: asyncio.Event) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0))
        try:
            while not stop.is_set():
                try:
                    await self.sync()
                except Exception as err:  # noqa: BLE001 - one failed pass must not end the kubelet
                    log.warning("kubelet sync failed: %r", err)
                try:
                    await asyncio.wait_for(stop.wait(), self.interval)
                except asyncio.TimeoutError:
                    pass
        finally:
            await self._session.close()

    async def sync(self) -> None:
        ns = self.namespace
        deployments, services, config_maps = await asyncio.gather(
            asyncio.to_thread(self.kube.list, "apps/v1", "Deployment", ns),
            asyncio.to_thread(self.kube.list, "v1", "Service", ns),
            asyncio.to_thread(self.kube.list, "v1", "ConfigMap", ns),
        )
        self.deployments = {d["metadata"]["name"]: d for d in deployments}
        cms = {c["metadata"]["name"]: c for c in config_maps}
        for dep in deployments:
            await self._reconcile(dep, cms)
        for pod in [p for p in self.pods.values() if p.deployment not in self.deployments]:
            self._stop_pod(pod)
        await self._probe()
        self._watch_processes()
        await self._update_proxies(services)
        for dep in deployments:
            await self._report(dep)
        self._write_targets()

    # ------------------------------------------------------------------ pods

    async def _reconcile(self, dep: dict, config_maps: dict[str, dict]) -> None:
        name = dep["metadata"]["name"]
        template = rules.template_hash(dep)
        mine = [p for p in self.pods.values() if p.deployment == name]
        start, stop_names = rules.plan_replicas(int(dep["spec"].get("replicas", 1)), template,
                                                [p.view() for p in mine])
        for pod_name in stop_names:
            self._stop_pod(self.pods[pod_name])
        for _ in range(start):
            try:
                await self._start_pod(dep, template, config_maps)
            except rules.NotYet as err:
                log.debug("%s; next pass", err)
                return
            except rules.UnsupportedWorkload as err:
                self._problem(str(err))
                return

    async def _tier_spec(self, dep: dict) -> ModelTierSpec | None:
        tier = (dep["metadata"].get("labels") or {}).get(rules.TIER_LABEL)
        if not tier:
            return None
        obj = await asyncio.to_thread(self.kube.get, API_VERSION, "ModelTier", self.namespace, tier)
        return ModelTierSpec.model_validate(obj["spec"]) if obj else None

    async def _start_pod(self, dep: dict, template: str, config_maps: dict[str, dict]) -> None:
        name = f"{dep['metadata']['name']}-{template[:5]}-{secrets.token_hex(3)[:5]}"
        container = rules.first_container(dep)
        number, port_name = rules.container_port(container)
        port = free_port()
        pod_dir = self.workdir / "pods" / name
        process = rules.local_process(dep, python=self.python, port=port, pod_dir=pod_dir, resolve=self.resolve,
                                      tier_spec=await self._tier_spec(dep), config_maps=config_maps,
                                      engine=self.engine)
        labels = dict(((dep["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {})
        pod = Pod(name, dep["metadata"]["name"], template, labels, port, number, port_name,
                  container.get("name", "main"), process)
        self.pods[name] = pod
        self._spawn(pod)
        log.info("pod %s started on port %d", name, port)

    def _spawn(self, pod: Pod) -> None:
        pod_dir = self.workdir / "pods" / pod.name
        for rel, content in pod.process.files.items():
            path = pod_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        pod_dir.mkdir(parents=True, exist_ok=True)
        pod.child = self.processes.start(pod.name, list(pod.process.argv), env=pod.process.env, cwd=pod_dir)
        pod.restart_at = None

    def _stop_pod(self, pod: Pod) -> None:
        """Terminate in the background (graceful shutdown lets in-flight requests finish)."""
        pod.ready = False
        pod.stopped = time.monotonic()
        self.pods.pop(pod.name, None)
        self.lifetimes.append(Lifetime(pod.deployment, pod.name, pod.created - self.t0, pod.stopped - self.t0))
        if pod.child is not None:
            child = pod.child
            asyncio.get_running_loop().run_in_executor(None, self.processes.stop, child, 10.0)
        log.info("pod %s stopping", pod.name)

    def _watch_processes(self) -> None:
        now = time.monotonic()
        for pod in self.pods.values():
            if pod.child is not None and not pod.child.alive():
                code = pod.child.popen.returncode
                self._problem(f"pod {pod.name} exited with code {code}; log {pod.child.log_path}:\n"
                              f"{pod.child.log_tail(800)}")
                self.processes.children.pop(pod.child.pid, None)
                pod.child, pod.ready = None, False
                pod.restart_at = now + min(MAX_BACKOFF, 2.0 ** pod.restarts)
                pod.restarts += 1
            elif pod.child is None and pod.restart_at is not None and now >= pod.restart_at:
                self._spawn(pod)

    async def _probe(self) -> None:
        now = time.monotonic()
        due = [p for p in self.pods.values()
               if p.child is not None and (not p.ready or now - p.checked >= READY_RECHECK)]
        results = await asyncio.gather(*(self._healthy(p) for p in due))
        for pod, ok in zip(due, results):
            pod.checked = now
            if ok and not pod.ready:
                pod.ready_at = now
                log.info("pod %s ready", pod.name)
            pod.ready = ok

    async def _healthy(self, pod: Pod) -> bool:
        try:
            async with self._session.get(f"http://127.0.0.1:{pod.port}{pod.process.ready_path}") as resp:
                return resp.status < 400
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return False

    def _problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)
            log.warning("%s", message)

    # ------------------------------------------------------------------ services

    async def _update_proxies(self, services: list[dict]) -> None:
        if self.proxy is None or not self.proxy.alive():
            if self.proxy is not None:
                self._problem(f"the Service proxy exited; restarting it. Log: {self.proxy.log_tail(500)}")
            self.proxy = self.processes.start("kube-proxy", [self.python, "-m", "tokenfleet.demo.proxy"],
                                              stdin_pipe=True)
            self.endpoints = {}
        for svc in services:
            name = svc["metadata"]["name"]
            selector = (svc.get("spec") or {}).get("selector")
            for sp in (svc.get("spec") or {}).get("ports") or []:
                key = (self.namespace, name, int(sp["port"]))
                endpoints = sorted(p.port for p in self.pods.values()
                                   if p.ready and rules.selector_matches(selector, p.labels)
                                   and rules.target_port(sp, p.container_port, p.port_name))
                if self.endpoints.get(key) != endpoints:
                    self._tell_proxy(f"{name}:{sp['port']}", self.service_port(*key), endpoints)
                    self.endpoints[key] = endpoints

    def _tell_proxy(self, name: str, port: int, endpoints: list[int]) -> None:
        line = json.dumps({"name": name, "port": port, "endpoints": endpoints}) + "\n"
        try:
            self.proxy.popen.stdin.write(line.encode())
            self.proxy.popen.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            self._problem(f"could not update the Service proxy: {err}")

    # ------------------------------------------------------------------ status, targets, timeline

    async def _report(self, dep: dict) -> None:
        name = dep["metadata"]["name"]
        template = rules.template_hash(dep)
        mine = [p for p in self.pods.values() if p.deployment == name]
        desired = int(dep["spec"].get("replicas", 1))
        ready = sum(1 for p in mine if p.ready)
        self._sample(name, desired, len(mine), ready)
        status = deployment_status(dep, len(mine), sum(1 for p in mine if p.template == template), ready)
        if self._patched.get(name) == status and (dep.get("status") or {}).get("observedGeneration") is not None:
            return
        stamped = {**status, "conditions": [{**c, "lastUpdateTime": _now(), "lastTransitionTime": _now()}
                                            for c in status["conditions"]]}
        await asyncio.to_thread(self.kube.patch_status, "apps/v1", "Deployment", self.namespace, name, stamped)
        self._patched[name] = status

    def _sample(self, name: str, desired: int, running: int, ready: int) -> None:
        last = next((s for s in reversed(self.timeline) if s.deployment == name), None)
        if last is None or (last.desired, last.running, last.ready) != (desired, running, ready):
            self.timeline.append(Sample(round(time.monotonic() - self.t0, 3), name, desired, running, ready))

    def _write_targets(self) -> None:
        if self.targets_file is None:
            return
        targets = sorted((scrape_target(p, self.namespace) for p in self.pods.values() if p.child is not None),
                         key=lambda t: t["labels"]["pod"])
        if targets == self._targets:
            return
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(targets, indent=1))
        os.replace(tmp, self.targets_file)
        self._targets = targets

    # ------------------------------------------------------------------ shutdown

    async def close(self) -> None:
        """Stop every pod (in parallel, graceful) and every proxy."""
        for pod in list(self.pods.values()):
            pod.stopped = time.monotonic()
            self.lifetimes.append(Lifetime(pod.deployment, pod.name, pod.created - self.t0, pod.stopped - self.t0))
        children = [p.child for p in self.pods.values() if p.child is not None]
        self.pods.clear()
        await asyncio.gather(*(asyncio.to_thread(self.processes.stop, c, 5.0) for c in children))
        if self.proxy is not None:
            await asyncio.to_thread(self.processes.stop, self.proxy, 2.0)


def deployment_status(dep: dict, replicas: int, updated: int, ready: int) -> dict:
    """A Deployment's status from its pods, as the Deployment controller writes it (counts omitted at zero)."""
    desired = int(dep["spec"].get("replicas", 1))
    available = ready >= desired
    status = {
        "observedGeneration": dep["metadata"].get("generation", 1),
        "conditions": [
            {"type": "Available", "status": "True" if available else "False",
             "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
             "message": "Deployment has minimum availability." if available
             else "Deployment does not have minimum availability."},
            {"type": "Progressing", "status": "True",
             "reason": "NewReplicaSetAvailable" if available and updated == replicas else "ReplicaSetUpdated",
             "message": f"{ready} of {desired} replicas ready."},
        ],
    }
    counts = {"replicas": replicas, "updatedReplicas": updated, "readyReplicas": ready,
              "availableReplicas": ready, "unavailableReplicas": max(0, desired - ready)}
    status.update({k: v for k, v in counts.items() if v})
    return status


def scrape_target(pod: Pod, namespace: str) -> dict:
    """A file_sd target for one pod, labelled as a PodMonitor with podTargetLabels would label it."""
    labels = {"namespace": namespace, "pod": pod.name, "container": pod.container,
              "job": f"{namespace}/tokenfleet-workloads"}
    for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"):
        if key in pod.labels:
            labels[key.replace(".", "_").replace("/", "_")] = pod.labels[key]
    return {"targets": [f"127.0.0.1:{pod.port}"], "labels": labels}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
