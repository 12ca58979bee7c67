"""The router as an ASGI app (Starlette routes + lifespan), for embedding and in-process tests.

``tokenfleet router`` serves the same endpoints (handlers.py) through its native HTTP/1.1
server (server.py), which costs less per request than any ASGI server can.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from tokenfleet.router import errors, handlers
from tokenfleet.router.core import RouterCore
from tokenfleet.router.settings import RouterSettings

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
    parts, size, message = [], 0, {"more_body": True}
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise errors.too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


class AsgiResponder:
    """handlers.Responder over ASGI send. Once the request body is in, a watcher on receive notices a
    client that leaves and cancels the task answering it (the upstream call closes with it)."""

    def __init__(self, receive, send):
        self.send = send
        self.receive = receive
        self.left = False
        self.finishing = False  # the last message is on its way: a disconnect now is the server's own
        self._watcher: asyncio.Future | None = None

    def watch(self, task: asyncio.Task) -> None:
        self._watcher = asyncio.ensure_future(self._disconnect(task))

    def unwatch(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    async def whole(self, status: int, headers: handlers.Headers, body: bytes) -> None:
        headers.append((b"content-length", str(len(body)).encode()))
        self.finishing = True
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def start(self, status: int, headers: handlers.Headers) -> None:
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def chunk(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self) -> None:
        self.finishing = True
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    def gone(self) -> bool:
        return self.left

    async def _disconnect(self, task: asyncio.Task) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        if not self.finishing:  # uvicorn also answers http.disconnect once the response is complete
            self.left = True
            task.cancel()


class Completions:
    """``POST /v1/chat/completions`` or ``POST /v1/completions`` as a raw ASGI app."""

    def __init__(self, kind: str):
        self.kind = kind

    async def __call__(self, scope, receive, send) -> None:
        core: RouterCore = scope["app"].state.core
        out = AsgiResponder(receive, send)
        if scope["method"] != "POST":
            err = errors.method_not_allowed(scope["method"])
            return await out.whole(err.status, err.headers(), err.body())
        task = asyncio.current_task()

        async def read_body(limit: int) -> bytes:
            body = await _read_body(scope, receive, limit)
            out.watch(task)
            return body

        try:
            await handlers.completion(core, self.kind, _header(scope, b"authorization"), read_body, out)
        except asyncio.CancelledError:
            if not out.left:
                raise
            task.uncancel()  # our own cancel, for a client that left: nothing more to answer
        finally:
            out.unwatch()


class Simple:
    """A GET endpoint of handlers.py as an ASGI app."""

    def __init__(self, fn):
        self.fn = fn

    async def __call__(self, scope, receive, send) -> None:
        core: RouterCore = scope["app"].state.core
        if self.fn is handlers.models:
            status, headers, body = handlers.models(core, _header(scope, b"authorization"))
        else:
            status, headers, body = self.fn(core)
        await AsgiResponder(receive, send).whole(status, headers, body)


async def _http_error(request, exc) -> Response:
    err = errors.not_found(f"no route {request.url.path}") if exc.status_code == 404 else \
        errors.method_not_allowed(request.method) if exc.status_code == 405 else \
        errors.RouterError(exc.status_code, str(exc.detail), "invalid_request_error", "http_error")
    return Response(err.body(), err.status, media_type="application/json")


class FastPath:
    """The Starlette app, with the completion routes dispatched straight to their handlers."""

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

    hot = {path: Completions(kind) for path, kind in handlers.COMPLETIONS.items()}
    routes = [Route(path, endpoint) for path, endpoint in hot.items()]
    routes.append(Route("/v1/models", Simple(handlers.models), methods=["GET"]))
    routes += [Route(path, Simple(fn), methods=["GET"]) for path, fn in handlers.SIMPLE.items()]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: _http_error, 405: _http_error})
    return FastPath(app, hot)
