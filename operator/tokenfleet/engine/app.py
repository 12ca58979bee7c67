"""The engine emulator's HTTP server: vLLM's OpenAI routes, /metrics and test controls (Starlette)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tokenfleet import __version__
from tokenfleet.engine import responses as fmt
from tokenfleet.engine.answers import Choice
from tokenfleet.engine.metrics import CONTENT_TYPE
from tokenfleet.engine.protocol import ApiError, Plan
from tokenfleet.engine.runtime import Job
from tokenfleet.engine.settings import EMULATED_VLLM_VERSION, EngineSettings
from tokenfleet.engine.state import CHAT, COMPLETIONS, Emulator


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
                if job.done.cancelled():
                    return  # the engine died: end without [DONE] so the client sees a broken stream
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
        prepared = em.accept(endpoint, await request.body())
        plan, choices = prepared.plan, prepared.choices
        rid, created = fmt.request_id(plan.kind), int(time.time())
        if em.engine is None:
            _count_instant(em, plan, choices, started)
            if plan.stream:
                streaming = True
                return StreamingResponse(_stream_instant(em, plan, choices, rid, created),
                                         media_type="text/event-stream")
            return Response(prepared.response(rid, created), media_type="application/json")
        try:
            job = em.engine.submit(choices)
        except ValueError as err:
            raise ApiError(400, str(err)) from None
        except RuntimeError as err:
            raise ApiError(503, str(err)) from None
        if plan.stream:
            streaming = True
            return StreamingResponse(_stream_job(em, plan, job, rid, created), media_type="text/event-stream")
        if not await _wait_or_disconnect(request, job):
            if em.engine.dead:
                raise ApiError(500, em.engine.dead)
            em.engine.abort(job)
            return _error(ApiError(499, "client disconnected"))
        return Response(prepared.response(rid, created), media_type="application/json")
    except ApiError as err:
        return _error(err)
    finally:
        if not streaming:
            em.stats.in_flight -= 1


async def chat_completions(request: Request) -> Response:
    return await _generate(request, CHAT)


async def completions(request: Request) -> Response:
    return await _generate(request, COMPLETIONS)


def _refusal(em: Emulator) -> Response | None:
    """The 503 of an engine that is loading, set unhealthy or dead; None when it serves."""
    try:
        em.check_serving()
    except ApiError as err:
        return _error(err)
    return None


async def models(request: Request) -> Response:
    em: Emulator = request.app.state.emulator
    if (refusal := _refusal(em)) is not None:
        return refusal
    root = em.settings.source or em.settings.served_name
    data = [{"id": name, "object": "model", "created": em.created, "owned_by": "vllm", "root": root,
             "parent": None, "max_model_len": em.settings.max_model_len} for name in em.settings.models]
    return JSONResponse({"object": "list", "data": data})


async def health(request: Request) -> Response:
    return _refusal(request.app.state.emulator) or Response(b"", status_code=200)


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
            em.set_capability(min(1.0, max(0.0, float(body["capability"]))))
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
