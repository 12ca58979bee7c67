"""The control loops the emulator runs in-process: CRD registration, garbage collection, namespaces, Deployments."""

from __future__ import annotations

import asyncio
import copy
import logging

from tokenfleet.localkube.admission import now
from tokenfleet.localkube.errors import KubeError
from tokenfleet.localkube.resources import Resource, resource_from_crd
from tokenfleet.localkube.store import NAMESPACES, Event, Store

log = logging.getLogger(__name__)
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
DEPLOYMENTS = ("apps", "deployments")
ORPHAN, FOREGROUND = "orphan", "foregroundDeletion"


def _res(store: Store, key: tuple[str, str]) -> Resource:
    res = store.registry.get(*key)
    assert res is not None, key
    return res


class CrdController:
    """A CRD serves its resource as soon as it is stored, is marked Established, and takes its objects with it."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self.store, self.loop = store, loop

    def __call__(self, event: Event) -> None:
        if event.key != CRDS:
            return
        crd = event.obj
        if event.type == "DELETED":
            served = resource_from_crd(crd)
            res = self.store.registry.get(*served.key)
            if res is not None:
                self.store.purge(res, list(self.store.items(res)))
                for watcher in [w for w in self.store.watchers if w.res.key == served.key]:
                    watcher.close()
                self.store.registry.remove(served.key)
            return
        self.store.registry.add(resource_from_crd(crd))
        if not any(c.get("type") == "Established" for c in (crd.get("status") or {}).get("conditions") or []):
            self.loop.call_soon(self._establish, crd["metadata"]["name"])

    def _establish(self, name: str) -> None:
        res = _res(self.store, CRDS)
        crd = self.store.peek(res, None, name)
        if crd is None:
            return
        crd = copy.deepcopy(crd)
        stamp = now()
        crd["status"] = {
            "acceptedNames": crd["spec"]["names"],
            "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": stamp},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": stamp},
            ],
        }
        self.store.write_internal(res, crd)


class GarbageCollector:
    """Owner references: dependents of a deleted owner go too (background), or first (foreground), or stay (orphan)."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self.store, self.loop = store, loop

    def __call__(self, event: Event) -> None:
        meta = event.obj["metadata"]
        if event.type == "DELETED":
            self.loop.call_soon(self.collect)
        elif meta.get("deletionTimestamp") and {ORPHAN, FOREGROUND} & set(meta.get("finalizers") or []):
            self.loop.call_soon(self._finish, event.key, meta.get("namespace"), meta["name"])
        elif meta.get("ownerReferences"):  # written after its owners went: collected too, as the real GC does
            self.loop.call_soon(self._dangling, event.key, meta.get("namespace"), meta["name"])

    def _dangling(self, key: tuple[str, str], namespace: str | None, name: str) -> None:
        """Delete the object if none of its owners exists (by uid): a client wrote it after they were deleted."""
        res = self.store.registry.get(*key)
        obj = self.store.peek(res, namespace, name) if res is not None else None
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        for ref in obj["metadata"].get("ownerReferences") or []:
            owner_res = self.store.registry.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
            if owner_res is None:
                return  # an owner of a kind this emulator does not serve: leave it
            owner = self.store.peek(owner_res, namespace if owner_res.namespaced else None, ref.get("name", ""))
            if owner is not None and owner["metadata"].get("uid") == ref.get("uid"):
                return
        self._delete(res, obj)

    def _everything(self) -> list[tuple[Resource, dict]]:
        return [(res, obj) for res in self.store.registry.all() for obj in list(self.store.items(res))]

    def _dependents(self, uid: str) -> list[tuple[Resource, dict]]:
        return [(res, obj) for res, obj in self._everything()
                if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])]

    def collect(self) -> None:
        """Delete every object all of whose owners are gone (their own finalizers still apply)."""
        live = {obj["metadata"].get("uid") for _, obj in self._everything()}
        for res, obj in self._everything():
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and not obj["metadata"].get("deletionTimestamp") and all(r.get("uid") not in live for r in refs):
                self._delete(res, obj)
        self.retry_foreground()

    def _delete(self, res: Resource, obj: dict) -> None:
        try:
            self.store.delete(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        except KubeError:
            pass  # already gone

    def _finish(self, key: tuple[str, str], namespace: str | None, name: str) -> None:
        res = _res(self.store, key)
        owner = self.store.peek(res, namespace, name)
        if owner is None or not owner["metadata"].get("deletionTimestamp"):
            return
        finalizers = list(owner["metadata"].get("finalizers") or [])
        dependents = self._dependents(owner["metadata"]["uid"])
        if ORPHAN in finalizers:
            for dep_res, dep in dependents:
                dep = copy.deepcopy(dep)
                dep["metadata"]["ownerReferences"] = [r for r in dep["metadata"]["ownerReferences"]
                                                      if r.get("uid") != owner["metadata"]["uid"]]
                if not dep["metadata"]["ownerReferences"]:
                    del dep["metadata"]["ownerReferences"]
                self.store.write_internal(dep_res, dep)
            finalizers.remove(ORPHAN)
        elif FOREGROUND in finalizers:
            pending = [d for d in dependents if not d[1]["metadata"].get("deletionTimestamp")]
            for dep_res, dep in pending:
                self._delete(dep_res, dep)
            if self._dependents(owner["metadata"]["uid"]):
                return  # called again when the dependents' DELETED events trigger collect()
            finalizers.remove(FOREGROUND)
        owner = copy.deepcopy(owner)
        owner["metadata"]["finalizers"] = finalizers
        self.store.write_internal(res, owner)

    def retry_foreground(self) -> None:
        for res, obj in self._everything():
            meta = obj["metadata"]
            if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
                self._finish(res.key, meta.get("namespace"), meta["name"])


class NamespaceController:
    """A deleted namespace turns Terminating, its objects are deleted, and it goes once it is empty."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self.store, self.loop = store, loop

    def __call__(self, event: Event) -> None:
        if event.key == NAMESPACES and event.obj["metadata"].get("deletionTimestamp") and event.type != "DELETED":
            self.loop.call_soon(self.sweep, event.obj["metadata"]["name"])
        elif event.type == "DELETED" and event.obj["metadata"].get("namespace"):
            ns = self.store.objects[NAMESPACES].get(("", event.obj["metadata"]["namespace"]))
            if ns is not None and ns["metadata"].get("deletionTimestamp"):
                self.loop.call_soon(self.sweep, ns["metadata"]["name"])

    def sweep(self, name: str) -> None:
        ns_res = _res(self.store, NAMESPACES)
        ns = self.store.peek(ns_res, None, name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        namespaced = [r for r in self.store.registry.all() if r.namespaced]
        for res in namespaced:
            for obj in list(self.store.items(res, name)):
                if not obj["metadata"].get("deletionTimestamp"):
                    try:
                        self.store.delete(res, name, obj["metadata"]["name"])
                    except KubeError:
                        pass
        if not any(self.store.items(r, name) for r in namespaced):
            ns = copy.deepcopy(ns)
            ns["spec"]["finalizers"] = []
            self.store.write_internal(ns_res, ns)


class DeploymentController:
    """Sets a Deployment's status from its spec, as if its pods started (after ``ready_delay`` seconds)."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop, ready_delay: float = 0.0) -> None:
        self.store, self.loop, self.ready_delay = store, loop, ready_delay

    def __call__(self, event: Event) -> None:
        if event.key != DEPLOYMENTS or event.type == "DELETED":
            return
        meta, status = event.obj["metadata"], event.obj.get("status") or {}
        replicas = (event.obj.get("spec") or {}).get("replicas", 1)
        if status.get("observedGeneration") != meta.get("generation") or status.get("readyReplicas", 0) != replicas:
            key = (meta.get("namespace"), meta["name"], meta.get("generation"))
            self.loop.call_later(self.ready_delay, self._settle, key)

    def _settle(self, key: tuple) -> None:
        namespace, name, generation = key
        res = _res(self.store, DEPLOYMENTS)
        obj = self.store.peek(res, namespace, name)
        if obj is None or obj["metadata"].get("generation") != generation:
            return  # a newer generation has its own timer
        obj = copy.deepcopy(obj)
        obj["status"] = deployment_status(obj, (obj.get("status") or {}).get("conditions"))
        self.store.write_internal(res, obj)


def deployment_status(obj: dict, conditions: list | None = None) -> dict:
    """The status of a Deployment whose every replica is up to date and ready."""
    replicas = (obj.get("spec") or {}).get("replicas", 1)
    stamp = now()
    old = {c.get("type"): c for c in conditions or []}

    def condition(kind: str, reason: str, message: str) -> dict:
        previous = old.get(kind) or {}
        since = previous.get("lastTransitionTime") if previous.get("status") == "True" else stamp
        return {"type": kind, "status": "True", "reason": reason, "message": message,
                "lastUpdateTime": stamp, "lastTransitionTime": since}

    status = {"observedGeneration": obj["metadata"].get("generation", 1), "replicas": replicas,
              "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
              "conditions": [
                  condition("Available", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                  condition("Progressing", "NewReplicaSetAvailable",
                            f'ReplicaSet "{obj["metadata"]["name"]}" has successfully progressed.')]}
    if replicas == 0:
        for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
            del status[key]  # omitempty in the real API
    return status
