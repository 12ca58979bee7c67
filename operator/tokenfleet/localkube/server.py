"""``LocalKube``: the emulator served over real HTTP from a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import threading
from pathlib import Path
from typing import Any, Callable

import yaml
from aiohttp import web

from tokenfleet.localkube import controllers
from tokenfleet.localkube.app import build_app
from tokenfleet.localkube.errors import KubeError
from tokenfleet.localkube.operations import relabel
from tokenfleet.localkube.rbac import Identity
from tokenfleet.localkube.state import ServedRequest, State, new_state

BOOT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _load_yaml_docs(path: str | Path) -> list[dict]:
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")) if path.is_dir() else [path]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster on large CRDs
    return [doc for f in files for doc in yaml.load_all(f.read_text(), Loader=loader) if isinstance(doc, dict)]


class LocalKube:
    """A Kubernetes API emulator on 127.0.0.1 for tests and ``tokenfleet demo``.

    ``with LocalKube() as kube:`` starts it on a free port (``port=0``); ``kube.url`` and
    ``kube.write_kubeconfig(path)`` point clients (kubectl, kopf, the kubernetes client) at it.
    ``rbac=True`` authorizes requests made with a ``token_for`` token by the stored RBAC objects
    (localkube/rbac.py); requests without a token stay the admin's.
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", deployment_controller: bool = True,
                 ready_delay: float = 0.0, bookmark_interval: float = 5.0, watch_timeout: float = 1800.0,
                 history: int = 10000, rbac: bool = False) -> None:
        self.host, self.port = host, port
        self.deployment_controller, self.ready_delay = deployment_controller, ready_delay
        self.state: State = new_state(history=history)
        self.state.bookmark_interval, self.state.watch_timeout = bookmark_interval, watch_timeout
        self.state.rbac = rbac
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "LocalKube":
        """Serve from a daemon thread; returns once the port accepts connections."""
        ready: concurrent.futures.Future = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="localkube", daemon=True)
        self._thread.start()
        ready.result(timeout=30)
        return self

    def _serve(self, ready: concurrent.futures.Future) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._open())
        except BaseException as err:  # e.g. the port is taken: tell start() instead of dying silently
            ready.set_exception(err)
            loop.close()
            return
        ready.set_result(None)
        loop.run_forever()
        loop.close()

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        store = self.state.store
        store.listeners += [controllers.CrdController(store, loop), controllers.GarbageCollector(store, loop),
                            controllers.NamespaceController(store, loop)]
        if self.deployment_controller:
            store.listeners.append(controllers.DeploymentController(store, loop, self.ready_delay))
        ns_res = self.state.registry.get("", "namespaces")
        for name in BOOT_NAMESPACES:
            store.create(ns_res, None, {"metadata": {"name": name}})
        self._runner = web.AppRunner(build_app(self.state), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self.state.port = self._runner.addresses[0][1]

    async def _close(self) -> None:
        for watcher in list(self.state.store.watchers):
            watcher.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop = self._thread = None

    def __enter__(self) -> "LocalKube":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop (where every mutation must happen) and return its result."""
        assert self._loop is not None, "LocalKube is not running"

        async def _run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(_run(), self._loop).result(timeout=30)

    # ------------------------------------------------------------ clients

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def kubeconfig(self, namespace: str = "default") -> dict:
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "localkube", "preferences": {},
            "clusters": [{"name": "localkube", "cluster": {"server": self.url}}],
            "contexts": [{"name": "localkube", "context": {"cluster": "localkube", "user": "localkube",
                                                           "namespace": namespace}}],
            "users": [{"name": "localkube", "user": {}}],
        }

    def write_kubeconfig(self, path: str | Path, namespace: str = "default", token: str | None = None) -> Path:
        """A kubeconfig (cluster, context and user all named ``localkube``) that points here: no auth (the
        admin), or acting as the identity of ``token`` (``token_for``) when RBAC is on."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = self.kubeconfig(namespace)
        if token is not None:
            config["users"][0]["user"] = {"token": token}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def token_for(self, namespace: str, service_account: str) -> str:
        """A bearer token acting as that ServiceAccount (authorized by the stored RBAC objects if ``rbac``)."""
        token = f"localkube-{namespace}-{service_account}-{len(self.state.tokens)}"
        self.state.tokens[token] = Identity.for_service_account(namespace, service_account)
        return token

    # ------------------------------------------------------------ assertions and direct access

    @property
    def requests(self) -> list[ServedRequest]:
        """Every request served so far (method, path, query, status, resource, namespace, name, subresource)."""
        return self.state.served()

    def write_count(self, resource: str | None = None, namespace: str | None = None, name: str | None = None) -> int:
        """Mutating requests (POST/PUT/PATCH/DELETE, dry runs excluded, failed ones included) since the last reset."""
        return self.state.write_count(resource, namespace, name)

    def reset_counters(self) -> None:
        self.state.reset()

    def get_object(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict | None:
        """The stored object as the API would serve it at ``api_version``, or None."""
        group, _, version = api_version.rpartition("/")
        res = self.state.registry.lookup(group, version, plural)
        if res is None:
            return None
        with self.state.store.lock:
            obj = self.state.store.peek(res, namespace if res.namespaced else None, name)
            return copy.deepcopy(relabel(obj, api_version)) if obj is not None else None

    def apply(self, obj: dict) -> dict:
        """Create ``obj``, or replace it (status included, as a controller would) if it exists."""
        def _apply() -> dict:
            res = self.state.registry.by_kind(obj["apiVersion"], obj["kind"])
            if res is None:
                raise KubeError(404, "NotFound", f"no resource for {obj['apiVersion']}/{obj['kind']}")
            store, meta = self.state.store, obj["metadata"]
            namespace = (meta.get("namespace") or "default") if res.namespaced else None
            version = obj["apiVersion"].rpartition("/")[2]
            current = store.peek(res, namespace, meta["name"])
            if current is None:
                store.create(res, namespace, obj, version=version)
            else:
                store.update(res, namespace, meta["name"], {**obj, "metadata": {
                    **meta, "resourceVersion": current["metadata"]["resourceVersion"]}}, version=version)
            if res.status and "status" in obj:
                current = store.get(res, namespace, meta["name"])
                store.update(res, namespace, meta["name"], {**current, "status": obj["status"]}, "status",
                             version=version)
            return store.get(res, namespace, meta["name"])
        return self.call(_apply)

    def set_status(self, api_version: str, plural: str, namespace: str | None, name: str, status: dict) -> dict:
        """Replace an object's ``status`` as a controller would (a watch event, no request counted)."""
        def _set() -> dict:
            group, _, version = api_version.rpartition("/")
            res = self.state.registry.lookup(group, version, plural)
            if res is None:
                raise KubeError(404, "NotFound", f"no resource {plural} in {api_version}")
            current = self.state.store.get(res, namespace if res.namespaced else None, name)
            written = self.state.store.write_internal(res, {**current, "status": copy.deepcopy(status)})
            return relabel(written or current, api_version)
        return self.call(_set)

    def apply_crds(self, path_or_dir: str | Path) -> list[str]:
        """Register the CustomResourceDefinitions in a YAML file or a directory of them; their names."""
        crds = [d for d in _load_yaml_docs(path_or_dir) if d.get("kind") == "CustomResourceDefinition"]
        return [self.apply(crd)["metadata"]["name"] for crd in crds]
