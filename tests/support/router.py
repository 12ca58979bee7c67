"""Router test helpers: inline OpenAI-compatible upstreams that count their calls, and a router in front of them."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import openai
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.procs import free_port
from tokenfleet.api.routerconfig import RouterConfig
from tokenfleet.router.app import build_app
from tokenfleet.router.server import RouterServer
from tokenfleet.router.settings import RouterSettings


class FakeTier:
    """A tier built inline: answers ``tokens`` with each token's logprob ``logprob``; counts every call."""

    def __init__(self, name: str, *, logprob: float = -0.1, status: int = 200, delay: float = 0.0,
                 tokens: tuple[str, ...] = ("Hello", " there", ",", " friend", "."), finish: str = "stop",
                 token_delay: float = 0.0, break_after: int | None = None, error: str = "boom"):
        self.name, self.logprob, self.status, self.delay, self.error = name, logprob, status, delay, error
        self.tokens, self.finish, self.token_delay, self.break_after = tokens, finish, token_delay, break_after
        self.bodies: list[dict] = []
        self.streamed_tokens = 0

    @property
    def calls(self) -> int:
        return len(self.bodies)

    def _logprobs(self, kind: str, tokens) -> dict:
        if kind == "chat":
            return {"content": [{"token": t, "logprob": self.logprob, "top_logprobs": []} for t in tokens]}
        return {"tokens": list(tokens), "token_logprobs": [self.logprob] * len(tokens)}

    def _choice(self, kind: str, body: dict, tokens, finish) -> dict:
        asked = bool(body.get("logprobs")) if kind == "chat" else body.get("logprobs") is not None
        lp = self._logprobs(kind, tokens) if asked else None
        text = "".join(tokens)
        if kind == "chat":
            return {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": lp,
                    "finish_reason": finish}
        return {"index": 0, "text": text, "logprobs": lp, "finish_reason": finish}

    def _usage(self) -> dict:
        return {"prompt_tokens": 10, "completion_tokens": len(self.tokens), "total_tokens": 10 + len(self.tokens)}

    async def _generate(self, request: Request, kind: str) -> Response:
        body = json.loads(await request.body())
        self.bodies.append(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            kind = "BadRequestError" if self.status == 400 else "server_error"
            return JSONResponse({"error": {"message": self.error, "type": kind, "code": self.status}}, self.status)
        head = {"id": f"{self.name}-{self.calls}", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            obj = "chat.completion" if kind == "chat" else "text_completion"
            return JSONResponse({**head, "object": obj, "choices": [self._choice(kind, body, self.tokens, self.finish)],
                                 "usage": self._usage()})
        return StreamingResponse(self._events(kind, body, head), media_type="text/event-stream")

    async def _events(self, kind: str, body: dict, head: dict):
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
        asked = bool(body.get("logprobs")) if kind == "chat" else body.get("logprobs") is not None
        if kind == "chat":
            yield _sse({**head, "object": obj, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                            "logprobs": None, "finish_reason": None}]})
        for i, token in enumerate(self.tokens):
            if self.break_after is not None and i >= self.break_after:
                raise RuntimeError("the fake tier breaks the stream")
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
            finish = self.finish if i == len(self.tokens) - 1 else None
            lp = self._logprobs(kind, [token]) if asked else None
            choice = ({"index": 0, "delta": {"content": token}, "logprobs": lp, "finish_reason": finish}
                      if kind == "chat" else {"index": 0, "text": token, "logprobs": lp, "finish_reason": finish})
            yield _sse({**head, "object": obj, "choices": [choice]})
            self.streamed_tokens += 1
        if (body.get("stream_options") or {}).get("include_usage"):
            yield _sse({**head, "object": obj, "choices": [], "usage": self._usage()})
        yield b"data: [DONE]\n\n"

    def app(self) -> Starlette:
        async def chat(request):
            return await self._generate(request, "chat")

        async def completions(request):
            return await self._generate(request, "completion")

        async def models(request):
            return JSONResponse({"object": "list", "data": [{"id": self.name, "object": "model"}]})

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                                 Route("/v1/completions", completions, methods=["POST"]),
                                 Route("/v1/models", models)])


def _sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def start(app, port: int | None = None) -> tuple[uvicorn.Server, asyncio.Task, str]:
    """Start serving an ASGI app with uvicorn inside the running event loop."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on"))
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    return server, task, f"http://127.0.0.1:{port}"


async def stop(*servers: tuple[uvicorn.Server, asyncio.Task, str]) -> None:
    """Stop servers together (each takes a main-loop tick to notice)."""
    for server, _, _ in servers:
        server.should_exit = True
    await asyncio.gather(*[task for _, task, _ in servers])


@contextlib.asynccontextmanager
async def serve(app, port: int | None = None):
    """Serve an ASGI app with uvicorn inside the running event loop; yields its base URL."""
    running = await start(app, port)
    try:
        yield running[2]
    finally:
        await stop(running)


# --------------------------------------------------------------------------- a router in front of fakes

DET = {"temperature": 0}
HELLO = [{"role": "user", "content": "Say hello."}]


def config(tiers: list[tuple[str, str]], *, tier_extra: dict | None = None, **fields) -> RouterConfig:
    extra = tier_extra or {}
    data = {"fleet": "chat", "tiers": [{"name": n, "url": u + "/v1", "servedModel": n, **extra.get(n, {})}
                                       for n, u in tiers], **fields}
    return RouterConfig.model_validate(data)


@contextlib.asynccontextmanager
async def router_at(cfg: RouterConfig, keys: dict | None = None, front: str = "native"):
    """The router on a free port: the native server (what the CLI runs) or the ASGI app; yields (URL, core)."""
    settings = RouterSettings(config=cfg, api_keys=keys)
    if front == "asgi":
        app = build_app(settings)
        async with serve(app) as url:
            yield url, app.state.core
        return
    server, port = RouterServer(settings), free_port()
    await server.start("127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}", server.core
    finally:
        await server.stop(grace=1)


@contextlib.asynccontextmanager
async def fleet(*fakes: FakeTier, keys: dict | None = None, tier_extra: dict | None = None, front: str = "native",
                **fields):
    """Serve the fakes and a router in front of them; yields (router URL, core)."""
    servers = list(await asyncio.gather(*[start(f.app()) for f in fakes]))
    try:
        cfg = config([(f.name, s[2]) for f, s in zip(fakes, servers)], tier_extra=tier_extra, **fields)
        async with router_at(cfg, keys, front) as (url, core):
            yield url, core
    finally:
        await stop(*servers)


def client(url: str, key: str = "sk-test") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0,
                              http_client=httpx.AsyncClient(verify=False))


async def post(url: str, body, headers: dict | None = None, path: str = "/v1/chat/completions") -> httpx.Response:
    async with httpx.AsyncClient(verify=False) as http:
        if isinstance(body, (bytes, str)):
            return await http.post(url + path, content=body, headers=headers or {})
        return await http.post(url + path, json=body, headers=headers or {})


def assert_openai_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) >= {"message", "type", "code"} and error["message"]
    assert error["code"] == code


FRONTS = pytest.mark.parametrize("front", ["native", "asgi"])
