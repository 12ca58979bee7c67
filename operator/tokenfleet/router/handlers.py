"""The router's endpoints, independent of the HTTP server: what to answer, not how to frame it.

Both front ends use these: the native HTTP/1.1 server (server.py, what ``tokenfleet router``
runs) and the ASGI app (app.py, for embedding and in-process tests). A front end hands an
endpoint the request's parts and a Responder; the endpoint answers through it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Protocol

import orjson

from tokenfleet.router import errors, sse
from tokenfleet.router.auth import tenant_for
from tokenfleet.router.cascade import Cost, Head
from tokenfleet.router.core import RouterCore

log = logging.getLogger("tokenfleet.router")
JSON = b"application/json"
CLIENT_CLOSED = 499  # status counted for a request whose client left before its answer (nginx's convention)
Headers = list[tuple[bytes, bytes]]


class Responder(Protocol):
    """How an endpoint answers: whole (with a length) or as a stream of chunks."""

    async def whole(self, status: int, headers: Headers, body: bytes) -> None: ...

    async def start(self, status: int, headers: Headers) -> None: ...

    async def chunk(self, data: bytes) -> None: ...

    async def end(self) -> None: ...

    def gone(self) -> bool:
        """True once the client has disconnected."""
        ...


def tags(tier: str, cache: str, cost: float | None = None) -> Headers:
    """The x-tokenfleet-* response headers."""
    headers = [(b"x-tokenfleet-tier", tier.encode()), (b"x-tokenfleet-cache", cache.encode())]
    if cost is not None:
        headers.append((b"x-tokenfleet-cost-usd", b"%.8f" % cost))
    return headers


async def completion(core: RouterCore, kind: str, authorization: bytes | None,
                     read_body: Callable[[int], bytes | Awaitable[bytes]], out: Responder) -> None:
    """``POST /v1/chat/completions`` (kind 'chat') or ``POST /v1/completions`` (kind 'completion').

    ``read_body(limit)`` gives the body (or an awaitable of it), raising a 413 RouterError past ``limit``.
    """
    started = time.perf_counter()
    tier, cache, status = "none", "miss", 500
    try:
        tenant = tenant_for(authorization, core.settings.api_keys)
        raw = read_body(core.config.limits.max_body_bytes)
        if not isinstance(raw, bytes):
            raw = await raw
        call = core.prepare(kind, tenant, raw)
        call.started = started
        if call.stream:
            tier, cache, status = await _stream(core, call, out)
        else:
            reply = await core.unary(call)
            tier, cache, status = reply.tier, reply.cache, reply.status
            await out.whole(reply.status, [(b"content-type", JSON), *tags(reply.tier, reply.cache, reply.cost)],
                            reply.body)
    except errors.RouterError as err:
        status = err.status
        await out.whole(err.status, err.headers(), err.body())
    except asyncio.CancelledError:  # the client hung up (its front end cancels the request's work)
        core.metrics.request_done(tier, cache, CLIENT_CLOSED, time.perf_counter() - started)
        raise
    except Exception:  # noqa: BLE001 - answered as a 500 in OpenAI's shape, never a bare crash
        log.exception("request failed")
        status = 500
        err = errors.internal("internal router error")
        await out.whole(err.status, err.headers(), err.body())
    core.metrics.request_done(tier, cache, status, time.perf_counter() - started)


async def _stream(core: RouterCore, call, out: Responder) -> tuple[str, str, int]:
    """Relay a Head and its events; a client that leaves stops the upstream call (or its share of it).

    The stream's Cost becomes an SSE comment before ``[DONE]`` (0 for a request riding on another's call).
    """
    items, shared = core.stream(call)
    head: Head | None = None
    cache = "miss"
    try:
        async for item in items:
            if out.gone():
                return (head.tier if head else "none"), cache, CLIENT_CLOSED
            if head is None:
                head = item
                cache = "coalesced" if shared and head.cache == "miss" else head.cache
                kind = JSON if head.json else b"text/event-stream"
                await out.start(head.status, [(b"content-type", kind), (b"cache-control", b"no-cache"),
                                              *tags(head.tier, cache)])
            elif type(item) is Cost:
                await out.chunk(sse.cost_comment(0.0 if shared else item.usd))
            else:
                await out.chunk(item)
    except Exception as err:  # noqa: BLE001 - before the status line it is the request's error, after it an event
        if head is None:
            raise
        log.warning("stream failed after release: %r", err)
        await out.chunk(sse.error_event(str(err)) + sse.DONE)
    finally:
        await items.aclose()
    await out.end()
    return head.tier, cache, head.status


def models(core: RouterCore, authorization: bytes | None) -> tuple[int, Headers, bytes]:
    """``GET /v1/models``: the fleet name, ``auto`` and every tier."""
    try:
        tenant_for(authorization, core.settings.api_keys)
    except errors.RouterError as err:
        return err.status, err.headers(), err.body()
    return 200, [(b"content-type", JSON)], core.models()


def healthz(core: RouterCore) -> tuple[int, Headers, bytes]:
    return 200, [(b"content-type", JSON)], b'{"status":"ok"}'


def readyz(core: RouterCore) -> tuple[int, Headers, bytes]:
    """Ready once started: tiers that scale to zero must not keep the router out of its Service."""
    body = {"status": "ready", "fleet": core.config.fleet, "tiers": [t.name for t in core.tiers],
            "cache": core.config.cache.url}
    return 200, [(b"content-type", JSON)], orjson.dumps(body)


def metrics(core: RouterCore) -> tuple[int, Headers, bytes]:
    return 200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")], core.metrics.exposition()


# path -> (method, endpoint kind or simple handler)
COMPLETIONS = {"/v1/chat/completions": "chat", "/v1/completions": "completion"}
SIMPLE = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}
