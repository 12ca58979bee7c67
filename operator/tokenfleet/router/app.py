"""The router's HTTP app: routes and a lifespan; the OpenAI endpoints are raw ASGI for speed."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager

import orjson
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from tokenfleet.router import errors, sse
from tokenfleet.router.auth import tenant_for
from tokenfleet.router.cascade import Head
from tokenfleet.router.core import RouterCore
from tokenfleet.router.settings import RouterSettings

log = logging.getLogger("tokenfleet.router")
JSON = b"application/json"
DRAIN_LIMIT = 64 << 20  # bodies over the limit but under this are read and dropped before the 413


def _header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def _read_body(scope: dict, receive, limit: int) -> bytes:
    length = _header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        if int(length) <= DRAIN_LIMIT:  # read it away first: clients still sending miss an early answer
            message = {"more_body": True}
            while message.get("more_body"):
                message = await receive()
        raise errors.too_large(limit)
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise errors.too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise errors.too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


async def _send(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send, err: errors.RouterError) -> None:
    await _send(send, err.status, err.body(), err.headers())


def _tag(tier: str, cache: str, cost: float | None = None) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-tokenfleet-tier", tier.encode()), (b"x-tokenfleet-cache", cache.encode())]
    if cost is not None:
        headers.append((b"x-tokenfleet-cost-usd", b"%.8f" % cost))
    return headers


class Completions:
    """``POST /v1/chat/completions`` or ``POST /v1/completions`` as a raw ASGI app."""

    def __init__(self, kind: str):
        self.kind = kind

    async def __call__(self, scope, receive, send) -> None:
        core: RouterCore = scope["app"].state.core
        started = time.perf_counter()
        tier, cache, status = "none", "miss", 500
        try:
            if scope["method"] != "POST":
                raise errors.method_not_allowed(scope["method"])
            tenant = tenant_for(_header(scope, b"authorization"), core.settings.api_keys)
            raw = await _read_body(scope, receive, core.config.limits.max_body_bytes)
            call = core.prepare(self.kind, tenant, raw)
            call.started = started
            if call.stream:
                tier, cache, status = await self._stream(core, call, receive, send)
            else:
                reply = await core.unary(call)
                tier, cache, status = reply.tier, reply.cache, reply.status
                headers = [(b"content-type", JSON), *_tag(reply.tier, reply.cache, reply.cost)]
                await _send(send, reply.status, reply.body, headers)
        except errors.RouterError as err:
            status = err.status
            await _send_error(send, err)
        except Exception:  # noqa: BLE001 - answered as a 500 in OpenAI's shape, never a bare crash
            log.exception("request failed")
            status = 500
            await _send_error(send, errors.internal("internal router error"))
        core.metrics.request_done(tier, cache, status, time.perf_counter() - started)

    async def _stream(self, core: RouterCore, call, receive, send) -> tuple[str, str, int]:
        items, shared = core.stream(call)
        head: Head | None = None
        gone = asyncio.ensure_future(_disconnect(receive))  # a client that leaves stops its upstream call
        try:
            async for item in items:
                if gone.done():
                    return (head.tier, cache, 499) if head else ("none", "miss", 499)
                if head is None:
                    head = item
                    cache = "coalesced" if shared and head.cache == "miss" else head.cache
                    kind = JSON if head.json else b"text/event-stream"
                    headers = [(b"content-type", kind), (b"cache-control", b"no-cache"), *_tag(head.tier, cache)]
                    await send({"type": "http.response.start", "status": head.status, "headers": headers})
                    continue
                await send({"type": "http.response.body", "body": item, "more_body": True})
        except errors.RouterError:
            if head is not None:  # cannot happen after the head; kept well-formed anyway
                await send({"type": "http.response.body", "body": sse.DONE, "more_body": False})
                return head.tier, cache, head.status
            raise
        except Exception as err:  # noqa: BLE001
            if head is None:
                raise
            log.warning("stream failed after release: %r", err)
            await send({"type": "http.response.body", "body": sse.error_event(str(err)) + sse.DONE,
                        "more_body": True})
        finally:
            gone.cancel()
            await items.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return head.tier, cache, head.status


async def _disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def models(scope, receive, send) -> None:
    core: RouterCore = scope["app"].state.core
    try:
        tenant_for(_header(scope, b"authorization"), core.settings.api_keys)
    except errors.RouterError as err:
        return await _send_error(send, err)
    await _send(send, 200, core.models(), [(b"content-type", JSON)])


async def healthz(scope, receive, send) -> None:
    await _send(send, 200, b'{"status":"ok"}', [(b"content-type", JSON)])


async def readyz(scope, receive, send) -> None:
    """Ready once started: tiers that scale to zero must not keep the router out of its Service."""
    core: RouterCore = scope["app"].state.core
    body = {"status": "ready", "fleet": core.config.fleet, "tiers": [t.name for t in core.tiers],
            "cache": core.config.cache.url}
    await _send(send, 200, orjson.dumps(body), [(b"content-type", JSON)])


async def metrics(scope, receive, send) -> None:
    core: RouterCore = scope["app"].state.core
    await _send(send, 200, core.metrics.exposition(), [(b"content-type", b"text/plain; version=0.0.4")])


class _Raw:
    """Marks a plain ``async (scope, receive, send)`` function as an ASGI app for Starlette's Route."""

    def __init__(self, fn):
        self.fn = fn

    async def __call__(self, scope, receive, send) -> None:
        await self.fn(scope, receive, send)


async def _http_error(request, exc) -> Response:
    err = errors.not_found(f"no route {request.url.path}") if exc.status_code == 404 else \
        errors.method_not_allowed(request.method) if exc.status_code == 405 else \
        errors.RouterError(exc.status_code, str(exc.detail), "invalid_request_error", "http_error")
    return Response(err.body(), err.status, media_type="application/json")


class FastPath:
    """The Starlette app, with the completion routes dispatched straight to their handlers.

    Starlette's middleware and routing cost a few microseconds per request; the two hot POST
    routes skip them (same handlers, same scope). Everything else, lifespan included, goes
    through Starlette.
    """

    def __init__(self, app: Starlette, hot: dict[str, object]):
        self.app = app
        self.hot = hot
        self.state = app.state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            handler = self.hot.get(scope["path"])
            if handler is not None:
                scope["app"] = self.app
                return await handler(scope, receive, send)
        await self.app(scope, receive, send)


def build_app(settings: RouterSettings) -> FastPath:
    """The router as an ASGI app; the lifespan creates the core (clients, caches, policy)."""

    @asynccontextmanager
    async def lifespan(app: Starlette):
        core = RouterCore(settings)
        await core.start()
        app.state.core = core
        try:
            yield
        finally:
            await core.close()

    chat, completions = Completions("chat"), Completions("completion")
    routes = [
        Route("/v1/chat/completions", chat),
        Route("/v1/completions", completions),
        Route("/v1/models", _Raw(models)),
        Route("/healthz", _Raw(healthz)),
        Route("/readyz", _Raw(readyz)),
        Route("/metrics", _Raw(metrics)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: _http_error, 405: _http_error})
    return FastPath(app, {"/v1/chat/completions": chat, "/v1/completions": completions})
