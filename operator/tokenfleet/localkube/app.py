"""The aiohttp application of the emulator: URL parsing, content negotiation (JSON, Table, metadata), records."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

from aiohttp import web

from tokenfleet.localkube import discovery, operations, rbac, tables, watch
from tokenfleet.localkube.errors import KubeError, endpoint_not_found, method_not_allowed
from tokenfleet.localkube.resources import Resource
from tokenfleet.localkube.selectors import make_filter
from tokenfleet.localkube.state import ServedRequest, State

log = logging.getLogger(__name__)
PARTIAL = "as=PartialObjectMetadata"
STATE = web.AppKey("localkube_state", State)
TARGET = web.RequestKey("localkube_target", object)
NAME = web.RequestKey("localkube_name", str)
RECORDED = web.RequestKey("localkube_recorded", bool)


@dataclasses.dataclass
class Target:
    """What a resource URL names: a collection, an object, or an object's subresource."""

    res: Resource
    version: str
    namespace: str | None
    name: str | None
    sub: str | None


def _json(body: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        headers={"Content-Type": content_type})


def _parse_target(state: State, group: str, version: str, rest: list[str], path: str) -> Target:
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise endpoint_not_found(path)
    res = state.registry.lookup(group, version, rest[0])
    if res is None or (namespace is not None and not res.namespaced):
        raise endpoint_not_found(path)
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if (res.namespaced and name is not None and namespace is None) or (sub and sub not in res.subresources()):
        raise endpoint_not_found(path)
    return Target(res, version, namespace, name, sub)


async def _discovery(request: web.Request, state: State, parts: list[str]) -> web.Response | None:
    accept = request.headers.get("Accept", "")
    if parts in (["api"], ["apis"]):
        wanted = discovery.aggregated_version(accept)
        if wanted:
            doc = discovery.aggregated(state.registry, parts == ["api"], wanted)
            media = f"application/json;g=apidiscovery.k8s.io;v={wanted.split('/')[1]};as=APIGroupDiscoveryList"
            return _json(doc, content_type=media)
        if parts == ["api"]:
            return _json(discovery.api_versions(f"127.0.0.1:{state.port}"))
        return _json(discovery.api_group_list(state.registry))
    if parts[0] == "apis" and len(parts) == 2:
        versions = state.registry.group_versions().get(parts[1])
        return _json(discovery.api_group(parts[1], versions)) if versions else None
    group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
    doc = discovery.resource_list(state.registry, group, version)
    return _json(doc) if doc else None


def _wants(request: web.Request, what: str) -> bool:
    return what in request.headers.get("Accept", "")


def _render_list(request: web.Request, target: Target, items: list[dict], meta: dict) -> web.Response:
    res, api_version = target.res, target.res.api_version(target.version)
    if _wants(request, tables.TABLE_ACCEPT):
        include = request.query.get("includeObject", "Metadata")
        items = [operations.relabel(o, api_version) for o in items]
        return _json(tables.build_table(res, target.version, items, meta, include))
    if _wants(request, PARTIAL):
        return _json({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                      "items": [tables.partial_metadata(o) for o in items]})
    return _json({"kind": f"{res.kind}List", "apiVersion": api_version, "metadata": meta,
                  "items": [operations.relabel(o, api_version) for o in items]})


def _render_one(request: web.Request, target: Target, obj: dict, status: int = 200) -> web.Response:
    if target.sub == "scale" or obj.get("kind") == "Scale":
        return _json(obj, status)
    obj = operations.relabel(obj, target.res.api_version(target.version))
    if _wants(request, tables.TABLE_ACCEPT):
        return _json(tables.build_table(target.res, target.version, [obj], {
            "resourceVersion": obj["metadata"].get("resourceVersion", "")},
            request.query.get("includeObject", "Metadata")), status)
    if _wants(request, PARTIAL):
        return _json(tables.partial_metadata(obj), status)
    return _json(obj, status)


async def _collection(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    res, q = target.res, request.query
    if request.method == "POST":
        body = operations.parse_body(await request.read(), request.content_type)
        operations.check_strict(res, body, q, target.version)
        obj = state.store.create(res, target.namespace, body, q.get("dryRun") == "All", target.version)
        request[NAME] = obj["metadata"]["name"]
        return _render_one(request, target, obj, 201)
    keep = make_filter(q.get("labelSelector"), q.get("fieldSelector"), res.plural)
    if request.method == "DELETE":
        options = operations.delete_options(q, operations.parse_body(await request.read(), request.content_type))
        items, meta = operations.list_objects(state.store, res, target.namespace, keep, None, None)
        deleted = [operations.delete(state.store, res, target.namespace, o["metadata"]["name"], options)[0]
                   for o in items]
        return _render_list(request, target, deleted, meta)
    if request.method != "GET":
        raise method_not_allowed(f"the server does not allow this method on the requested resource")
    if q.get("watch") in ("true", "1"):
        return await _watch(request, state, target, keep)
    limit = int(q["limit"]) if q.get("limit", "").isdigit() else None
    items, meta = operations.list_objects(state.store, res, target.namespace, keep, limit, q.get("continue"))
    return _render_list(request, target, items, meta)


async def _watch(request: web.Request, state: State, target: Target, keep: Any) -> web.StreamResponse:
    q = request.query
    send_initial = q.get("sendInitialEvents") == "true"
    try:
        watcher: Any = watch.subscribe(state.store, target.res, target.namespace, keep, q.get("resourceVersion"),
                                       send_initial)
    except KubeError as err:
        if err.code != 410:
            raise
        watcher = err
    api_version = target.res.api_version(target.version)
    if _wants(request, tables.TABLE_ACCEPT):
        include = q.get("includeObject", "Metadata")
        convert = lambda o: tables.build_table(target.res, target.version, [operations.relabel(o, api_version)],  # noqa: E731
                                               {"resourceVersion": o["metadata"].get("resourceVersion", "")}, include)
    else:
        convert = lambda o: operations.relabel(o, api_version)  # noqa: E731
    timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds", "").isdigit() else state.watch_timeout
    bookmarks = q.get("allowWatchBookmarks") == "true"
    _record(request, state, 200)  # now, not when the stream ends: tests wait for watches to start
    return await watch.serve(request, state.store, watcher, version=target.version, convert=convert,
                             timeout=timeout, bookmarks=bookmarks, bookmark_interval=state.bookmark_interval)


async def _item(request: web.Request, state: State, target: Target) -> web.Response:
    res, q, name = target.res, request.query, target.name
    assert name is not None
    request[NAME] = name
    dry_run = q.get("dryRun") == "All"
    if request.method == "GET":
        obj = state.store.get(res, target.namespace, name)
        return _render_one(request, target, operations.scale_of(res, obj) if target.sub == "scale" else obj)
    body = operations.parse_body(await request.read(), request.content_type)
    if request.method == "PUT":
        if target.sub == "scale":
            obj = operations.write_scale(state.store, res, target.namespace, name, body or {}, dry_run,
                                         target.version)
        else:
            operations.check_strict(res, body, q, target.version)
            obj = state.store.update(res, target.namespace, name, body, target.sub, dry_run, target.version)
        return _render_one(request, target, obj)
    if request.method == "PATCH":
        obj, status = operations.patch(state.store, res, target.namespace, name, target.sub,
                                       request.headers.get("Content-Type", ""), body, dict(q), target.version)
        return _render_one(request, target, obj, status)
    if request.method == "DELETE" and target.sub is None:
        obj, status = operations.delete(state.store, res, target.namespace, name, operations.delete_options(q, body))
        return _render_one(request, target, obj, status)
    raise method_not_allowed("the server does not allow this method on the requested resource")


def _identity(request: web.Request, state: State) -> rbac.Identity | None:
    """Who the request acts as under RBAC; None: the admin (no RBAC, or no token)."""
    if not state.rbac:
        return None
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    token = header.removeprefix("Bearer ").strip()
    who = state.tokens.get(token)
    if who is None:
        raise KubeError(401, "Unauthorized", "Unauthorized")
    return who


async def _authorize(request: web.Request, state: State, who: rbac.Identity, target: Target) -> None:
    """403 unless ``who``'s roles allow the request (and the blocking owner references it sets)."""
    res = target.res
    verb = rbac.verb_of(request.method, target.name is not None, request.query.get("watch") in ("true", "1"))
    access = rbac.Access(verb, res.group, res.plural, target.sub, target.namespace, target.name)
    with state.store.lock:
        if not rbac.allowed(state.store, state.registry, who, access):
            raise rbac.forbidden(who, access)
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    try:
        body = operations.parse_body(await request.read(), request.content_type)
    except KubeError:
        return  # the handler answers the bad body
    if isinstance(body, dict):
        with state.store.lock:
            for owner in rbac.owner_accesses(state.registry, body, target.namespace):
                if not rbac.allowed(state.store, state.registry, who, owner):
                    raise KubeError(422, "Invalid", f'{res.qualified_kind} "{target.name or ""}" is forbidden: '
                                    f"cannot set blockOwnerDeletion if an ownerReference refers to a resource "
                                    f"you can't set finalizers on: {rbac.forbidden(who, owner).message}")


async def _dispatch(request: web.Request) -> web.StreamResponse:
    state: State = request.app[STATE]
    path = "/" + request.path.strip("/")
    if path in ("/healthz", "/readyz", "/livez"):
        return web.Response(text="ok")
    who = _identity(request, state)  # discovery and /version: open to anyone authenticated
    if path == "/version":
        return _json(discovery.VERSION)
    parts = path.strip("/").split("/")
    if parts[:2] == ["openapi", "v3"]:
        return _openapi(state, parts[2:], path)
    if parts[0] not in ("api", "apis") or (parts[0] == "api" and len(parts) > 1 and parts[1] != "v1"):
        raise endpoint_not_found(path)
    head = 2 if parts[0] == "api" else 3
    if len(parts) <= head:
        if request.method != "GET":
            raise method_not_allowed("discovery documents are read-only")
        answer = await _discovery(request, state, parts)
        if answer is None:
            raise endpoint_not_found(path)
        return answer
    group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
    target = _parse_target(state, group, version, parts[head:], path)
    request[TARGET] = target
    if who is not None:
        await _authorize(request, state, who, target)
    if target.name is None:
        return await _collection(request, state, target)
    return await _item(request, state, target)


def _openapi(state: State, rest: list[str], path: str) -> web.Response:
    if not rest:
        return _json(discovery.openapi_v3_root(state.registry))
    group, version = ("", rest[1]) if rest[0] == "api" and len(rest) == 2 else \
        (rest[1], rest[2]) if rest[0] == "apis" and len(rest) == 3 else ("", "")
    doc = discovery.openapi_v3_group_version(state.registry, group, version) if version else None
    if doc is None:
        raise endpoint_not_found(path)
    return _json(doc)


def _record(request: web.Request, state: State, status: int) -> None:
    if request.get(RECORDED):
        return
    request[RECORDED] = True
    target = request.get(TARGET)
    state.record(ServedRequest(
        method=request.method, path=request.path, query=dict(request.query), status=status,
        resource=target.res.plural if target else None, group=target.res.group if target else None,
        namespace=target.namespace if target else None, name=request.get(NAME),
        subresource=target.sub if target else None, time=time.time()))


@web.middleware
async def _errors_and_records(request: web.Request, handler: Any) -> web.StreamResponse:
    state: State = request.app[STATE]
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except KubeError as err:
        status = err.code
        return _json(err.status(), err.code)
    except Exception as err:  # an emulator bug: answer like the API server would, and log it
        log.exception("localkube: %s %s failed", request.method, request.path_qs)
        return _json(KubeError(500, "InternalError", f"localkube: {type(err).__name__}: {err}").status(), 500)
    finally:
        _record(request, state, status)


def build_app(state: State) -> web.Application:
    """One catch-all route; the state (store, registry, counters) travels on the app."""
    app = web.Application(middlewares=[_errors_and_records], client_max_size=64 * 1024 * 1024)
    app[STATE] = state
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app
