"""Watches: the atomic snapshot-and-subscribe, selector-aware event translation, and the HTTP event stream."""

from __future__ import annotations

import asyncio
import json
from typing import Callable

from aiohttp import web

from tokenfleet.localkube.errors import KubeError, bad_request
from tokenfleet.localkube.resources import Resource
from tokenfleet.localkube.store import Event, Store

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


class Watcher:
    """One client's subscription: matching events land in its queue (None closes it)."""

    def __init__(self, res: Resource, namespace: str | None, keep: Callable[[dict], bool]) -> None:
        self.res = res
        self.namespace = namespace
        self.keep = keep
        self.queue: asyncio.Queue = asyncio.Queue()

    def _in_scope(self, obj: dict | None) -> bool:
        if obj is None:
            return False
        return self.namespace is None or obj["metadata"].get("namespace") == self.namespace

    def offer(self, event: Event) -> None:
        """Translate a store event for this client: an object leaving its selector is DELETED, entering is ADDED."""
        if event.key != self.res.key or not self._in_scope(event.obj):
            return
        now = self.keep(event.obj)
        before = event.old is not None and self._in_scope(event.old) and self.keep(event.old)
        if event.type == "DELETED":
            kind = "DELETED" if now or before else None
        elif event.type == "ADDED":
            kind = "ADDED" if now else None
        elif now:
            kind = "MODIFIED" if before else "ADDED"
        else:
            kind = "DELETED" if before else None
        if kind:
            self.queue.put_nowait((kind, event.obj))

    def close(self) -> None:
        self.queue.put_nowait(None)


def subscribe(store: Store, res: Resource, namespace: str | None, keep: Callable[[dict], bool],
              resource_version: str | None, send_initial: bool) -> Watcher:
    """Snapshot (or replay from ``resource_version``) and subscribe in one step; 410 if that version is compacted."""
    watcher = Watcher(res, namespace, keep)
    with store.lock:
        if send_initial or resource_version in (None, "", "0"):
            for obj in store.items(res, namespace):
                if keep(obj):
                    watcher.queue.put_nowait(("ADDED", obj))
            if send_initial:
                watcher.queue.put_nowait(("INITIAL_END", store.rv))
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise bad_request(f"invalid resource version: {resource_version!r}") from None
            for event in store.replay(res.key, since):
                watcher.offer(event)
        store.watchers.add(watcher)
    return watcher


def _bookmark(res: Resource, version: str, rv: int, initial_end: bool = False) -> dict:
    meta: dict = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version(version),
                                           "metadata": meta}}


async def _write(response: web.StreamResponse, event: dict) -> None:
    await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")


async def serve(request: web.Request, store: Store, watcher: Watcher | KubeError, *, version: str,
                convert: Callable[[dict], dict], timeout: float, bookmarks: bool,
                bookmark_interval: float) -> web.StreamResponse:
    """Stream events as newline-delimited JSON until ``timeout``, the client leaves, or the watcher closes."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    if isinstance(watcher, KubeError):  # e.g. 410 Gone: the real API answers 200, then one ERROR event
        await _write(response, {"type": "ERROR", "object": watcher.status()})
        return response
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while (remaining := deadline - loop.time()) > 0:
            wait = min(remaining, bookmark_interval) if bookmarks else remaining
            try:
                item = await asyncio.wait_for(watcher.queue.get(), wait)
            except asyncio.TimeoutError:
                if bookmarks and deadline - loop.time() > 0:
                    await _write(response, _bookmark(watcher.res, version, store.rv))  # queue empty: all sent
                continue
            if item is None:
                break
            kind, obj = item
            if kind == "INITIAL_END":  # obj is the resourceVersion of the snapshot
                await _write(response, _bookmark(watcher.res, version, obj, initial_end=True))
            else:
                await _write(response, {"type": kind, "object": convert(obj)})
    except ConnectionResetError:
        pass
    finally:
        store.watchers.discard(watcher)
    return response
