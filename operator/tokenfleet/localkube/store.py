"""The object store: one cluster-wide resourceVersion counter, a bounded event history, watchers and listeners.

Every mutation runs on the server's event loop thread, so a watch's snapshot and its subscription happen in
one synchronous step: no event can fall between them. A lock guards reads from other threads (tests).
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import logging
import threading
from typing import Callable, Iterable

from tokenfleet.localkube import admission
from tokenfleet.localkube.errors import KubeError, already_exists, conflict, gone, invalid, not_found
from tokenfleet.localkube.resources import Registry, Resource

log = logging.getLogger(__name__)
ObjKey = tuple[str, str]  # (namespace or "", name)
NAMESPACES = ("", "namespaces")
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


@dataclasses.dataclass(frozen=True)
class Event:
    """A change to one object; ``old`` is its previous state (None for ADDED)."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    key: tuple[str, str]  # resource (group, plural)
    obj: dict
    old: dict | None


def _held(res: Resource, obj: dict) -> bool:
    """Whether a deleted object must stay: finalizers left (a namespace also waits on spec.finalizers)."""
    if obj["metadata"].get("finalizers"):
        return True
    return res.key == NAMESPACES and bool((obj.get("spec") or {}).get("finalizers"))


class Store:
    """Objects of every resource; each change gets the next resourceVersion and is broadcast."""

    def __init__(self, registry: Registry, history: int = 10000) -> None:
        self.registry = registry
        self.rv = 0
        self.compacted_rv = 0  # every event with rv > compacted_rv is still in the history
        self.objects: dict[tuple[str, str], dict[ObjKey, dict]] = collections.defaultdict(dict)
        self.history: collections.deque[Event] = collections.deque()
        self.history_size = history
        self.watchers: set = set()
        self.listeners: list[Callable[[Event], None]] = []
        self.lock = threading.RLock()

    # ------------------------------------------------------------ reads

    def peek(self, res: Resource, namespace: str | None, name: str) -> dict | None:
        """The stored object itself (not a copy; never mutate it), or None."""
        return self.objects[res.key].get((namespace or "", name))

    def get(self, res: Resource, namespace: str | None, name: str) -> dict:
        with self.lock:
            obj = self.peek(res, namespace, name)
            if obj is None:
                raise not_found(res, name)
            return copy.deepcopy(obj)

    def items(self, res: Resource, namespace: str | None = None) -> list[dict]:
        """Stored objects (not copies) of a resource, in one namespace or all, ordered by namespace and name."""
        bucket = self.objects[res.key]
        keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
        return [bucket[k] for k in keys]

    def list(self, res: Resource, namespace: str | None, keep: Callable[[dict], bool]) -> tuple[list[dict], int]:
        with self.lock:
            return [copy.deepcopy(o) for o in self.items(res, namespace) if keep(o)], self.rv

    # ------------------------------------------------------------ commits

    def _commit(self, res: Resource, kind: str, obj: dict, old: dict | None) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        bucket = self.objects[res.key]
        key = (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
        if kind == "DELETED":
            bucket.pop(key, None)
        else:
            bucket[key] = obj
        event = Event(self.rv, kind, res.key, obj, old)
        self.history.append(event)
        while len(self.history) > self.history_size:
            self.compacted_rv = self.history.popleft().rv
        for watcher in list(self.watchers):
            watcher.offer(event)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a controller's bug must not fail the write that is already committed
                log.exception("localkube: listener %r failed on %s %s", listener, event.type, event.key)
        return copy.deepcopy(obj)

    def _check_namespace(self, res: Resource, namespace: str | None) -> None:
        if not res.namespaced:
            return
        ns_res = self.registry.get(*NAMESPACES)
        ns = self.objects[NAMESPACES].get(("", namespace or ""))
        if ns is None:
            raise not_found(ns_res, namespace or "")
        if ns["metadata"].get("deletionTimestamp"):
            raise KubeError(403, "Forbidden", f'{res.qualified} "" is forbidden: unable to create new content in '
                            f"namespace {namespace} because it is being terminated",
                            {"name": "", "group": res.group, "kind": res.plural})

    def create(self, res: Resource, namespace: str | None, body: dict, dry_run: bool = False,
               version: str | None = None) -> dict:
        with self.lock:
            self._check_namespace(res, namespace)
            obj = admission.prepare_create(res, body, namespace, version or res.version)
            name = obj["metadata"]["name"]
            if self.peek(res, namespace, name) is not None:
                raise already_exists(res, name)
            if dry_run:
                return obj
            return self._commit(res, "ADDED", obj, None)

    def update(self, res: Resource, namespace: str | None, name: str, body: dict, subresource: str | None = None,
               dry_run: bool = False, version: str | None = None) -> dict:
        """Replace an object (PUT semantics): a stale resourceVersion is a 409; an unchanged object is not a write."""
        with self.lock:
            current = self.peek(res, namespace, name)
            if current is None:
                raise not_found(res, name)
            if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
                raise KubeError(400, "BadRequest", "the body of the request is not a JSON object")
            body_name = body.get("metadata", {}).get("name")
            if body_name and body_name != name:
                raise KubeError(400, "BadRequest", "the name of the object "
                                f"({body_name}) does not match the name on the URL ({name})")
            wanted_rv = body.get("metadata", {}).get("resourceVersion")
            if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if not wanted_rv and res.custom:  # custom resources allow no unconditional update
                raise invalid(res, name, [("metadata.resourceVersion", "metadata.resourceVersion: Invalid value: "
                                           "0x0: must be specified for an update")])
            new = admission.prepare_update(res, current, body, subresource, version or res.version)
            return self._store_update(res, current, new, dry_run)

    def _store_update(self, res: Resource, current: dict, new: dict, dry_run: bool) -> dict:
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if new == current:
            return copy.deepcopy(current)  # a no-op: no new resourceVersion, no event
        if dry_run:
            return new
        if new["metadata"].get("deletionTimestamp") and not _held(res, new):
            return self._commit(res, "DELETED", new, current)
        return self._commit(res, "MODIFIED", new, current)

    def delete(self, res: Resource, namespace: str | None, name: str, preconditions: dict | None = None,
               dry_run: bool = False, extra_finalizer: str | None = None) -> tuple[dict, bool]:
        """DELETE: gone at once without finalizers, else marked with deletionTimestamp. Returns (object, gone)."""
        with self.lock:
            current = self.peek(res, namespace, name)
            if current is None:
                raise not_found(res, name)
            if res.key == NAMESPACES and name in PROTECTED_NAMESPACES:
                raise KubeError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be '
                                "deleted", {"name": name, "kind": "namespaces"})
            pre = preconditions or {}
            meta = current["metadata"]
            if (pre.get("uid") and pre["uid"] != meta.get("uid")) or \
                    (pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion")):
                raise conflict(res, name, "the UID or resourceVersion in the precondition does not match")
            finalizers = list(meta.get("finalizers") or [])
            if extra_finalizer and extra_finalizer not in finalizers and not meta.get("deletionTimestamp"):
                finalizers.append(extra_finalizer)
            if not finalizers and not _held(res, current):
                if dry_run:
                    return copy.deepcopy(current), True
                return self._commit(res, "DELETED", copy.deepcopy(current), current), True
            new = admission.mark_deleted(res, current)
            if finalizers:
                new["metadata"]["finalizers"] = finalizers
            if res.key == NAMESPACES:
                new.setdefault("status", {})["phase"] = "Terminating"
            if dry_run:
                return new, False
            return self._store_update(res, current, new, False), False

    def write_internal(self, res: Resource, obj: dict) -> dict | None:
        """A controller's write of a whole object (status included), bypassing admission; None if it vanished."""
        with self.lock:
            current = self.peek(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            if current is None:
                return None
            return self._store_update(res, current, copy.deepcopy(obj), False)

    def purge(self, res: Resource, objs: Iterable[dict]) -> None:
        """Remove objects outright, finalizers or not (a CRD deleted, a namespace emptied)."""
        with self.lock:
            for obj in list(objs):
                if self.peek(res, obj["metadata"].get("namespace"), obj["metadata"]["name"]) is obj:
                    self._commit(res, "DELETED", copy.deepcopy(obj), obj)

    # ------------------------------------------------------------ watching

    def replay(self, key: tuple[str, str], since: int) -> list[Event]:
        """Events of a resource after ``since``; 410 Gone if the history no longer reaches back that far."""
        if since < self.compacted_rv:
            raise gone(f"too old resource version: {since} ({self.compacted_rv + 1})")
        return [e for e in self.history if e.rv > since and e.key == key]
