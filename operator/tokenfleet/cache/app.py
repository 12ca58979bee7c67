"""HTTP API of the cache service (Starlette): lookup, store, invalidate, stats, health and Prometheus metrics."""

from __future__ import annotations

import contextlib
import json
import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tokenfleet.cache.invalidations import Follower
from tokenfleet.cache.service import DEFAULT_KEYS, CacheService
from tokenfleet.cache.settings import CacheSettings, policy_summary

log = logging.getLogger("tokenfleet.cache")
MAX_NAME = 256  # longest tenant or model name
MAX_BODY = 8 << 20  # largest request body read


class BadRequest(Exception):
    """Input the API refuses: answered 400 with an OpenAI-style error body."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def error(status: int, message: str, code: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)


async def _json_body(request: Request) -> dict:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadRequest(f"request body over {MAX_BODY} bytes", "body_too_large")
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"body is not valid JSON: {err}", "invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object", "invalid_body")
    return body


def _name(body: dict, field: str, required: bool = True) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise BadRequest(f"'{field}' must be a non-empty string of at most {MAX_NAME} characters", f"invalid_{field}")
    return value


def _openai_request(body: dict) -> dict:
    """The OpenAI request body: chat (``messages``) or legacy completion (``prompt``)."""
    req = body.get("request")
    if not isinstance(req, dict):
        raise BadRequest("'request' must be the OpenAI request body (an object)", "invalid_request")
    if "messages" in req:
        messages = req["messages"]
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise BadRequest("'request.messages' must be a non-empty list of messages with a 'role'",
                             "invalid_messages")
    elif not isinstance(req.get("prompt"), (str, list)):
        raise BadRequest("'request' needs 'messages' (chat) or 'prompt' (completion)", "invalid_request")
    return req


def _parse(body: dict) -> tuple[str, str, dict]:
    return _name(body, "tenant"), _name(body, "model"), _openai_request(body)


async def lookup(request: Request) -> Response:
    service: CacheService = request.app.state.service
    body = await _json_body(request)
    tenant, model, req = _parse(body)
    semantic = body.get("semantic", True)
    if not isinstance(semantic, bool):
        raise BadRequest("'semantic' must be true or false", "invalid_semantic")
    hit = await service.lookup(tenant, model, req, semantic)
    if hit is None:
        return Response(b'{"hit":false}', media_type="application/json")
    similarity = "null" if hit.similarity is None else f"{hit.similarity:.6f}"
    content = b'{"hit":true,"kind":"%s","similarity":%s,"response":%s}' % (
        hit.kind.encode(), similarity.encode(), hit.entry.response)
    return Response(content, media_type="application/json")


async def store(request: Request) -> Response:
    service: CacheService = request.app.state.service
    body = await _json_body(request)
    tenant, model, req = _parse(body)
    if "response" not in body:
        raise BadRequest("'response' (the OpenAI response body) is required", "invalid_response")
    if not service.ready:
        return error(503, "the embedding model is still loading", "not_ready", "service_unavailable")
    reason = await service.put(tenant, model, req, body["response"])
    return JSONResponse({"stored": True} if reason is None else {"stored": False, "reason": reason})


async def invalidate(request: Request) -> Response:
    service: CacheService = request.app.state.service
    body = await _json_body(request)
    tenant, model = _name(body, "tenant", required=False), _name(body, "model", required=False)
    return JSONResponse({"removed": await service.invalidate(tenant, model)})


async def invalidations(request: Request) -> Response:
    """What a router has not seen of this replica's invalidations (``after=<instance>:<seq>``, repeated)."""
    service: CacheService = request.app.state.service
    log = service.invalidations
    after = Follower.parse_after(request.query_params.getlist("after")).get(log.instance)
    return JSONResponse(log.since(after))


async def stats(request: Request) -> Response:
    service: CacheService = request.app.state.service
    return JSONResponse({**service.stats(), "policy": policy_summary(service.settings)})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    service: CacheService = request.app.state.service
    if service.ready and service.vectors_pending:  # exact layer whole, semantic layer still filling
        return JSONResponse({"status": "ready", "vectors_pending": service.vectors_pending})
    if service.ready:
        return JSONResponse({"status": "ready"})
    if service.batcher is None:
        reason = service.model_error or "loading the embedding model"
    else:
        reason = "rebuilding the index from redis"
    return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)


async def metrics(request: Request) -> Response:
    service: CacheService = request.app.state.service
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _bad_request(request: Request, exc: BadRequest) -> Response:
    return error(400, str(exc), exc.code)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return error(exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404 else "bad_method")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path)
    return error(500, f"internal error: {type(exc).__name__}", "internal_error", "server_error")


ROUTES = [
    Route("/v1/lookup", lookup, methods=["POST"]),
    Route("/v1/store", store, methods=["POST"]),
    Route("/v1/invalidate", invalidate, methods=["POST"]),
    Route("/v1/invalidations", invalidations, methods=["GET"]),
    Route("/v1/stats", stats, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]


def create_app(settings: CacheSettings | None = None, *, embedder=None, keys=DEFAULT_KEYS, clock=None) -> Starlette:
    """The cache service app; ``embedder`` (already loaded) and ``clock`` are for tests and benchmarks."""
    settings = settings or CacheSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        kwargs = {"clock": clock} if clock is not None else {}
        app.state.service = CacheService(settings, embedder=embedder, keys=keys, **kwargs)
        await app.state.service.start()
        try:
            yield
        finally:
            await app.state.service.close()

    return Starlette(routes=ROUTES, lifespan=lifespan,
                     exception_handlers={BadRequest: _bad_request, HTTPException: _http_error,
                                         Exception: _server_error})
