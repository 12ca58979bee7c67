"""Orchestration of ``tokenfleet demo``: start everything, replay the traffic, report, stop everything.

Order: the Kubernetes API emulator (in this process) with the CRDs, Prometheus and the real
operator (subprocesses), the demo's custom resources, the kubelet (pods as local processes),
then the traffic through the router's Service. Shutdown runs in reverse order, on success, on
failure and on Ctrl-C (SIGINT) or SIGTERM; every child is in its own process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

from tokenfleet import API_VERSION
from tokenfleet.demo import prometheus, results, workload
from tokenfleet.demo.kubelet import Kubelet, free_port
from tokenfleet.demo.pods import EngineOptions
from tokenfleet.demo.processes import Processes
from tokenfleet.demo.traffic import Outcome, send_all

FLEET_FILE = Path(__file__).parent / "data" / "fleet.yaml"
ORDER = {"ModelTier": 0, "CachePolicy": 1, "InferenceFleet": 2}


class DemoError(RuntimeError):
    """Something the demo needs did not start; the message says what and where its log is."""


@dataclass(frozen=True)
class DemoOptions:
    """Settings of one demo run (see ``tokenfleet demo --help``)."""

    duration: float = 30.0
    rps: float = 14.0
    fleet_file: Path = FLEET_FILE
    trace: Path = workload.TRACE_SLICE
    namespace: str = "tokenfleet-demo"
    startup_delay: float = 3.0
    autoscale_interval: float = 2.0
    start_timeout: float = 90.0
    workdir: Path | None = None
    report: Path | None = None
    seed: int = 7
    prometheus: bool = True
    cpu_hourly_usd: float = results.CPU_HOURLY_USD


class Demo:
    """One run; ``await Demo(options).run()`` returns the exit code."""

    def __init__(self, options: DemoOptions, out=print):
        self.options = options
        self.out = out
        self.t0 = time.monotonic()
        self.workdir = options.workdir or Path(tempfile.mkdtemp(prefix="tokenfleet-demo-"))
        self.processes = Processes(self.workdir / "logs")
        self.kube = None  # LocalKube
        self.client = None  # tokenfleet.kube.Kube
        self.kubelet: Kubelet | None = None
        self.kubelet_task: asyncio.Task | None = None
        self.stop_kubelet = asyncio.Event()
        self.prometheus_url: str | None = None

    def say(self, message: str) -> None:
        self.out(f"[{time.monotonic() - self.t0:5.1f}s] {message}")

    # ------------------------------------------------------------------ the run

    async def run(self) -> int:
        docs = load_resources(self.options.fleet_file)
        self.first_tier = results.parse_docs(docs)[0][0]
        self.say(f"workdir {self.workdir} (logs, report)")
        await asyncio.to_thread(self._start_control_plane)
        await self._start_prometheus()
        await self._start_operator()
        await asyncio.to_thread(self._apply, docs)
        self._start_kubelet()
        router = await self._wait_ready(docs)
        rows = workload.load_trace(self.options.trace)
        planned = workload.plan_requests(rows, workload.load_prompts(),
                                         workload.WorkloadConfig(duration=self.options.duration,
                                                                 rps=self.options.rps, seed=self.options.seed))
        span = rows[-1].arrival - rows[0].arrival
        self.trace_note = (f" ({Path(self.options.trace).name}: {span / 60:.0f} minutes compressed "
                           f"{span / self.options.duration:.0f}x, 1 row in {len(rows) / max(len(planned), 1):.0f})")
        self.say(f"traffic: {len(planned)} requests over {self.options.duration:g}s "
                 f"({describe_mix(planned)}) through the router with the openai client")
        started = time.monotonic()
        outcomes = await send_all(f"{router}/v1", fleet_name(docs), planned, progress=self._progress)
        ended = time.monotonic()
        self.say(f"traffic done: {sum(o.ok for o in outcomes)}/{len(outcomes)} answered")
        metrics = await fetch_text(f"{router}/metrics")
        run = results.measure(outcomes, self.kubelet, docs, started - self.kubelet.t0, ended - self.kubelet.t0,
                              self.options.cpu_hourly_usd, metrics)
        report_path = self.options.report or self.workdir / "report.html"
        self._finish(run, report_path)
        failed = sum(not o.ok for o in outcomes)
        if failed > len(outcomes) * 0.05:
            raise DemoError(f"{failed} of {len(outcomes)} requests failed; first error: "
                            f"{next(o.error for o in outcomes if not o.ok)}")
        return 0

    def _finish(self, run: "results.DemoRun", report_path: Path) -> None:
        from tokenfleet.demo import report

        for line in results.summary_lines(run, self.trace_note):
            self.out(line)
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(report.render(run, self.trace_note))
        self.out(f"report: {report_path}")

    # ------------------------------------------------------------------ control plane

    def _start_control_plane(self) -> None:
        from tokenfleet.crds import build_crd
        from tokenfleet.api.v1alpha1 import KINDS
        from tokenfleet.kube import Kube
        from tokenfleet.localkube import LocalKube

        self.kube = LocalKube(deployment_controller=False).start()
        for info in KINDS.values():
            self.kube.apply(build_crd(info))
        self.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.options.namespace}})
        self.kubeconfig = self.kube.write_kubeconfig(self.workdir / "kubeconfig", self.options.namespace)
        self.client = Kube(kube_client(self.kubeconfig), field_manager="tokenfleet-demo")
        self.say(f"Kubernetes API emulator at {self.kube.url} (CRDs registered; kubeconfig {self.kubeconfig})")

    async def _start_prometheus(self) -> None:
        binary = prometheus.find_binary() if self.options.prometheus else None
        if binary is None:
            self.say("WARNING: " + (prometheus.INSTALL_HINT if self.options.prometheus
                                    else "--no-prometheus: the autoscaler holds replicas where they are."))
            return
        port = free_port()
        self.targets = self.workdir / "prometheus" / "targets.json"
        child = self.processes.start("prometheus", prometheus.command(binary, self.workdir / "prometheus", port,
                                                                     self.targets))
        await wait_http(f"http://127.0.0.1:{port}/-/ready", 30, child, "Prometheus")
        self.prometheus_url = f"http://127.0.0.1:{port}"
        self.say(f"Prometheus at {self.prometheus_url} (scrapes every pod each second)")

    async def _start_operator(self) -> None:
        health = free_port()
        env = {
            "KUBECONFIG": str(self.kubeconfig),
            "TOKENFLEET_PROMETHEUS_URL": self.prometheus_url or "",
            "TOKENFLEET_AUTOSCALE_INTERVAL_SECONDS": str(self.options.autoscale_interval),
            "TOKENFLEET_WATCH_NAMESPACES": self.options.namespace,
            "TOKENFLEET_METRICS_PORT": str(free_port()),
            "TOKENFLEET_HEALTH_PORT": str(health),
            "TOKENFLEET_LOG_FORMAT": "plain",
            "TOKENFLEET_METRICS_WINDOW": f"{max(5, round(4 * self.options.autoscale_interval))}s",
        }
        child = self.processes.start("operator", [sys.executable, "-m", "tokenfleet", "operator"], env=env)
        await wait_http(f"http://127.0.0.1:{health}/healthz", self.options.start_timeout, child, "the operator")
        self.say(f"operator running (kopf; autoscaler every {self.options.autoscale_interval:g}s"
                 f"{', reading Prometheus' if self.prometheus_url else ', holding: no Prometheus'})")

    def _apply(self, docs: list[dict]) -> None:
        for doc in sorted(docs, key=lambda d: ORDER.get(d.get("kind"), 9)):
            obj = {**doc, "metadata": {**doc["metadata"], "namespace": self.options.namespace}}
            self.client.create(obj)
        kinds = ", ".join(f"{d['kind']} {d['metadata']['name']}" for d in docs)
        self.say(f"applied {kinds}")

    def _start_kubelet(self) -> None:
        self.kubelet = Kubelet(self.client, self.options.namespace, self.processes, self.workdir, sys.executable,
                               EngineOptions(startup_delay=self.options.startup_delay),
                               targets_file=getattr(self, "targets", None))
        self.kubelet_task = asyncio.create_task(self.kubelet.run(self.stop_kubelet))

    async def _wait_ready(self, docs: list[dict]) -> str:
        """Wait until every Deployment the resources call for is ready; returns the router's base URL."""
        expected = expected_deployments(docs)
        deadline = time.monotonic() + self.options.start_timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            ready = {n for n, d in self.kubelet.deployments.items()
                     if int((d.get("status") or {}).get("readyReplicas") or 0) >= int(d["spec"].get("replicas", 1))
                     and (d.get("status") or {}).get("observedGeneration")}
            for name in sorted(ready - seen):
                self.say(f"deployment {name} ready")
            seen |= ready
            if expected <= ready:
                return self.kubelet.service_url(f"{fleet_name(docs)}-router", 8080)
        missing = sorted(expected - seen)
        problems = [*await asyncio.to_thread(self._not_ready, docs), *self.kubelet.problems[-3:]]
        raise DemoError(f"not ready after {self.options.start_timeout:g}s: {', '.join(missing)}; operator log: "
                        f"{self.workdir / 'logs' / 'operator.log'}" + "".join(f"\n  {p}" for p in problems))

    def _not_ready(self, docs: list[dict]) -> list[str]:
        """'Kind name: Ready=False Reason: message' for each of the resources the operator reports not ready."""
        out = []
        for doc in docs:
            obj = self.client.get(API_VERSION, doc["kind"], self.options.namespace, doc["metadata"]["name"]) or {}
            for c in (obj.get("status") or {}).get("conditions") or []:
                if c.get("type") == "Ready" and c.get("status") != "True":
                    out.append(f"{doc['kind']} {doc['metadata']['name']}: Ready={c.get('status')} "
                               f"{c.get('reason')}: {c.get('message')}")
        return out

    def _progress(self, outcomes: list[Outcome], elapsed: float) -> None:
        self.say(results.progress_line(outcomes, elapsed, self.kubelet, self.first_tier))

    # ------------------------------------------------------------------ shutdown

    async def shutdown(self) -> None:
        """Stop everything this run started, in reverse order; safe to call after a partial start."""
        self.stop_kubelet.set()
        if self.kubelet_task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.kubelet_task, 5)
        if self.kubelet is not None:
            await self.kubelet.close()
        await asyncio.to_thread(self.processes.stop_all, 5.0)
        if self.kube is not None:
            await asyncio.to_thread(self.kube.stop)
        self.say("stopped every process the demo started")


def load_resources(path: Path) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if isinstance(d, dict)]
    if not any(d.get("kind") == "InferenceFleet" for d in docs):
        raise DemoError(f"{path}: no InferenceFleet to send traffic to")
    return [d for d in docs if d.get("apiVersion") == API_VERSION]


def fleet_name(docs: list[dict]) -> str:
    return next(d["metadata"]["name"] for d in docs if d["kind"] == "InferenceFleet")


def expected_deployments(docs: list[dict]) -> set[str]:
    suffix = {"ModelTier": "engine", "CachePolicy": "cache", "InferenceFleet": "router"}
    return {f"{d['metadata']['name']}-{suffix[d['kind']]}" for d in docs if d["kind"] in suffix}


def describe_mix(planned: list[workload.PlannedRequest]) -> str:
    counts = {k: sum(1 for r in planned if r.kind == k) for k in workload.KINDS}
    return ", ".join(f"{v} {k}" for k, v in counts.items())


def kube_client(kubeconfig: Path):
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


async def fetch_text(url: str) -> str:
    """GET ``url`` as text; empty on any failure (the summary then lacks what it would have given)."""
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            async with session.get(url) as resp:
                return await resp.text()
    return ""


async def wait_http(url: str, timeout: float, child, what: str) -> None:
    """Wait until ``url`` answers below 500; DemoError (with the log tail) if ``child`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if not child.alive():
                raise DemoError(f"{what} exited with code {child.popen.returncode}; log {child.log_path}:\n"
                                f"{child.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
                async with session.get(url) as resp:
                    if resp.status < 500:
                        return
            await asyncio.sleep(0.1)
    raise DemoError(f"{what} did not answer {url} within {timeout:g}s; log {child.log_path}:\n{child.log_tail()}")


def main(options: DemoOptions, out=print) -> int:
    """Run the demo with Ctrl-C / SIGTERM handling; the exit code (0, 1 on failure, 130 on interrupt)."""
    return asyncio.run(_main(options, out))


async def _main(options: DemoOptions, out) -> int:
    demo = Demo(options, out)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    interrupted = []

    def interrupt(sig: int) -> None:
        interrupted.append(sig)
        if len(interrupted) == 1:
            out(f"\n{signal.Signals(sig).name}: stopping everything the demo started ...")
            task.cancel()
        else:  # a second signal: no more waiting
            demo.processes.kill_all()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt, sig)
    code = 1
    try:
        code = await demo.run()
    except asyncio.CancelledError:
        code = 130
    except DemoError as err:
        out(f"error: {err}")
        code = 1
    finally:
        task.uncancel() if interrupted else None
        await asyncio.shield(demo.shutdown())
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return code
