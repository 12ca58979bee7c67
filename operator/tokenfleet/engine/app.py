"""The engine emulator's HTTP server: vLLM's OpenAI routes, /metrics and test controls (Starlette)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import defaultdict, deque

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tokenfleet import __version__
from tokenfleet.engine import responses as fmt
from tokenfleet.engine.answers import Choice, build_choices
from tokenfleet.engine.metrics import CONTENT_TYPE, EngineMetrics
from tokenfleet.engine.protocol import ApiError, Plan, parse_body, plan_chat, plan_completion
from tokenfleet.engine.runtime import EngineLoop, Job
from tokenfleet.engine.settings import EMULATED_VLLM_VERSION, EngineSettings

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
RECENT_REQUESTS = 100  # request bodies kept for /_emulator/stats


class Stats:
    """Calls counted for tests and benchmarks (``GET /_emulator/stats``)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.by_endpoint: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.total = 0
        self.in_flight = 0
        self.injected_failures = 0
        self.recent: deque = deque(maxlen=RECENT_REQUESTS)

    def record(self, endpoint: str, body: dict) -> None:
        self.total += 1
        self.by_endpoint[endpoint][str(body.get("model"))] += 1
        self.recent.append({"endpoint": endpoint, "body": body})

    def as_dict(self) -> dict:
        by_model: dict[str, int] = defaultdict(int)
        for models in self.by_endpoint.values():
            for model, count in models.items():
                by_model[model] += count
        return {"total": self.total, "in_flight": self.in_flight, "injected_failures": self.injected_failures,
                "requests": {e: dict(m) for e, m in self.by_endpoint.items()}, "by_model": dict(by_model),
                "recent": list(self.recent)}


class Emulator:
    """Everything the routes share; built in the lifespan."""

    def __init__(self, settings: EngineSettings):
        self.settings = settings
        self.metrics = EngineMetrics(settings.served_name, legacy_names=settings.legacy_metric_names)
        self.stats = Stats()
        self.engine = None if settings.instant else EngineLoop(settings, self.metrics)
        self.capability = settings.resolved_capability()
        self.fail_rate = settings.fail_rate
        self.healthy = True
        self.rng = random.Random(settings.fail_seed)
        self.ready_at = time.monotonic() + settings.startup_delay
        self.created = int(time.time())

    def check_serving(self) -> None:
        if time.monotonic() < self.ready_at:
            raise ApiError(503, "the engine is loading the model (--startup-delay)")
        if not self.healthy:
            raise ApiError(503, "the engine is unhealthy (set by /_emulator/config)")

    def maybe_fail(self) -> None:
        if self.fail_rate and self.rng.random() < self.fail_rate:
            self.stats.injected_failures += 1
            raise ApiError(500, "injected failure (--fail-rate)")


def _error(err: ApiError) -> Response:
    return Response(fmt.dumps(err.body()), status_code=err.status, media_type="application/json")


async def _wait_or_disconnect(request: Request, job: Job) -> bool:
    """Wait until the job is done; False (and the job aborted) if the client went away first."""
    async def disconnected():
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({job.done, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    return job.done.done() and not job.done.cancelled()


async def _stream_job(em: Emulator, plan: Plan, job: Job, rid: str, created: int):
    """SSE chunks as the engine produces tokens: one chunk per choice per wake-up."""
    sent = [0] * len(job.choices)
    try:
        if plan.kind == "chat":
            for choice in job.choices:
                yield fmt.role_chunk(plan, rid, created, choice)
        while True:
            await job.event.wait()
            job.event.clear()
            for index, choice in enumerate(job.choices):
                produced = job.produced[index]
                if produced > sent[index]:
                    yield fmt.delta_chunk(plan, rid, created, choice, sent[index], produced, produced >= choice.count)
                    sent[index] = produced
            if job.done.done():
                break
        if plan.include_usage:
            yield fmt.usage_chunk(plan, rid, created, sum(c.count for c in job.choices))
        yield fmt.DONE
    finally:
        if not job.done.done():
            em.engine.abort(job)
        em.stats.in_flight -= 1


async def _stream_instant(em: Emulator, plan: Plan, choices: list[Choice], rid: str, created: int):
    """SSE chunks of an --instant engine: every token at once, one chunk each."""
    try:
        for choice in choices:
            if plan.kind == "chat":
                yield fmt.role_chunk(plan, rid, created, choice)
            for i in range(choice.count):
                yield fmt.delta_chunk(plan, rid, created, choice, i, i + 1, i + 1 >= choice.count)
        if plan.include_usage:
            yield fmt.usage_chunk(plan, rid, created, sum(c.count for c in choices))
        yield fmt.DONE
    finally:
        em.stats.in_flight -= 1


def _count_instant(em: Emulator, plan: Plan, choices: list[Choice], started: float) -> None:
    m = em.metrics
    elapsed = time.monotonic() - started
    m.prompt_tokens.inc(sum(p.tokens for p in plan.prompts))
    m.generation_tokens.inc(sum(c.count for c in choices))
    for choice in choices:
        m.success[choice.finish_reason].inc()
    m.ttft.observe(elapsed)
    m.e2e.observe(elapsed)


async def _generate(request: Request, endpoint: str) -> Response:
    em: Emulator = request.app.state.emulator
    started = time.monotonic()
    em.stats.in_flight += 1
    streaming = False
    try:
        em.check_serving()
        body = parse_body(await request.body())
        em.stats.record(endpoint, body)
        em.maybe_fail()
        plan = (plan_chat if endpoint == CHAT else plan_completion)(body, em.settings.max_model_len)
        if plan.model not in em.settings.models:
            raise ApiError(404, f"The model `{plan.model}` does not exist.", param="model")
        choices = build_choices(plan, em.settings.served_name, em.capability)
        rid, created = fmt.request_id(plan.kind), int(time.time())
        if em.engine is None:
            _count_instant(em, plan, choices, started)
            if plan.stream:
                streaming = True
                return StreamingResponse(_stream_instant(em, plan, choices, rid, created),
                                         media_type="text/event-stream")
            return Response(fmt.dumps(fmt.full_response(plan, choices, rid, created)), media_type="application/json")
        try:
            job = em.engine.submit(choices)
        except ValueError as err:
            raise ApiError(400, str(err)) from None
        if plan.stream:
            streaming = True
            return StreamingResponse(_stream_job(em, plan, job, rid, created), media_type="text/event-stream")
        if not await _wait_or_disconnect(request, job):
            em.engine.abort(job)
            return _error(ApiError(499, "client disconnected"))
        return Response(fmt.dumps(fmt.full_response(plan, choices, rid, created)), media_type="application/json")
    except ApiError as err:
        return _error(err)
    finally:
        if not streaming:
            em.stats.in_flight -= 1


async def chat_completions(request: Request) -> Response:
    return await _generate(request, CHAT)


async def completions(request: Request) -> Response:
    return await _generate(request, COMPLETIONS)


async def models(request: Request) -> Response:
    em: Emulator = request.app.state.emulator
    try:
        em.check_serving()
    except ApiError as err:
        return _error(err)
    root = em.settings.source or em.settings.served_name
    data = [{"id": name, "object": "model", "created": em.created, "owned_by": "vllm", "root": root,
             "parent": None, "max_model_len": em.settings.max_model_len} for name in em.settings.models]
    return JSONResponse({"object": "list", "data": data})


async def health(request: Request) -> Response:
    em: Emulator = request.app.state.emulator
    try:
        em.check_serving()
    except ApiError as err:
        return _error(err)
    return Response(b"", status_code=200)


async def version(request: Request) -> Response:
    return JSONResponse({"version": EMULATED_VLLM_VERSION, "emulator": f"tokenfleet {__version__}"})


async def metrics(request: Request) -> Response:
    em: Emulator = request.app.state.emulator
    if em.engine is None:
        em.metrics.set_batch(em.stats.in_flight, 0, 0.0)
    return Response(em.metrics.render(), media_type=CONTENT_TYPE)


async def stats(request: Request) -> Response:
    em: Emulator = request.app.state.emulator
    return JSONResponse(em.stats.as_dict())


async def reset(request: Request) -> Response:
    em: Emulator = request.app.state.emulator
    in_flight = em.stats.in_flight
    em.stats.reset()
    em.stats.in_flight = in_flight
    return JSONResponse(em.stats.as_dict())


async def configure(request: Request) -> Response:
    """Change fail_rate, capability, time_scale or healthy while running (resilience tests)."""
    em: Emulator = request.app.state.emulator
    try:
        body = json.loads(await request.body() or b"{}")
        if "fail_rate" in body:
            em.fail_rate = min(1.0, max(0.0, float(body["fail_rate"])))
        if "capability" in body:
            em.capability = min(1.0, max(0.0, float(body["capability"])))
        if "healthy" in body:
            em.healthy = bool(body["healthy"])
        if "time_scale" in body:
            scale = float(body["time_scale"])
            if scale <= 0:
                raise ValueError("time_scale must be > 0")
            if em.engine is not None:
                em.engine.time_scale = scale
    except (ValueError, TypeError, AttributeError) as err:
        return _error(ApiError(400, f"bad emulator config: {err}"))
    return JSONResponse({"fail_rate": em.fail_rate, "capability": em.capability, "healthy": em.healthy,
                         "time_scale": em.engine.time_scale if em.engine else None})


def build_app(settings: EngineSettings) -> Starlette:
    """The emulator's ASGI app; the engine loop runs for the app's lifetime."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        em = Emulator(settings)
        app.state.emulator = em
        task = asyncio.create_task(em.engine.run()) if em.engine else None
        try:
            yield
        finally:
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    routes = [
        Route(CHAT, chat_completions, methods=["POST"]),
        Route(COMPLETIONS, completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/_emulator/stats", stats, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/config", configure, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
