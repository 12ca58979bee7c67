"""Sends the demo's planned requests through the router with the official ``openai`` client, on schedule.

Each request starts at its planned time (a task per request, at most ``concurrency`` in flight)
and records what the router said about it: the tier that answered (``x-tokenfleet-tier``), the
cache kind (``x-tokenfleet-cache``), the router's cost (``x-tokenfleet-cost-usd``) and the usage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from tokenfleet.demo.workload import PlannedRequest


@dataclass
class Outcome:
    """What happened to one planned request."""

    index: int
    kind: str
    question: str
    at: float  # planned start, seconds after the traffic began
    sent: float = 0.0  # actual start
    done: float = 0.0  # last byte received
    ttft: float | None = None  # streams: time to the first content chunk
    ok: bool = False
    error: str = ""
    tier: str = ""
    cache: str = ""
    router_cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stream: bool = False

    @property
    def latency(self) -> float:
        return self.done - self.sent

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _headers(outcome: Outcome, headers) -> None:
    outcome.tier = headers.get("x-tokenfleet-tier", "")
    outcome.cache = headers.get("x-tokenfleet-cache", "")
    try:
        outcome.router_cost_usd = float(headers.get("x-tokenfleet-cost-usd") or 0.0)
    except ValueError:
        outcome.router_cost_usd = 0.0


async def _unary(client, model: str, req: PlannedRequest, outcome: Outcome) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=list(req.messages), temperature=req.temperature,
        extra_body={"min_tokens": req.min_tokens})
    _headers(outcome, raw.headers)
    completion = raw.parse()
    if completion.usage is not None:
        outcome.prompt_tokens = completion.usage.prompt_tokens
        outcome.completion_tokens = completion.usage.completion_tokens


async def _stream(client, model: str, req: PlannedRequest, outcome: Outcome, t0: float) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=list(req.messages), temperature=req.temperature, stream=True,
        stream_options={"include_usage": True}, extra_body={"min_tokens": req.min_tokens})
    _headers(outcome, raw.headers)
    async for chunk in raw.parse():
        if outcome.ttft is None and chunk.choices and chunk.choices[0].delta.content:
            outcome.ttft = time.monotonic() - t0 - outcome.sent
        if chunk.usage is not None:
            outcome.prompt_tokens = chunk.usage.prompt_tokens
            outcome.completion_tokens = chunk.usage.completion_tokens


async def _one(client, model: str, req: PlannedRequest, t0: float, gate: asyncio.Semaphore,
               outcome: Outcome) -> None:
    delay = t0 + req.at - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    async with gate:
        outcome.sent = time.monotonic() - t0
        try:
            if req.stream:
                await _stream(client, model, req, outcome, t0)
            else:
                await _unary(client, model, req, outcome)
            outcome.ok = True
        except Exception as err:  # noqa: BLE001 - every failure is recorded and reported
            outcome.error = f"{type(err).__name__}: {err}"[:300]
        outcome.done = time.monotonic() - t0


async def send_all(base_url: str, model: str, planned: list[PlannedRequest],
                   progress: Callable[[list[Outcome], float], None] | None = None,
                   progress_every: float = 5.0, concurrency: int = 512, timeout: float = 120.0) -> list[Outcome]:
    """Send every planned request on schedule; returns their outcomes in plan order."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="tokenfleet-demo", timeout=timeout, max_retries=0)
    gate = asyncio.Semaphore(concurrency)
    outcomes = [Outcome(r.index, r.kind, r.question, r.at, stream=r.stream) for r in planned]
    t0 = time.monotonic()
    tasks = [asyncio.create_task(_one(client, model, r, t0, gate, o)) for r, o in zip(planned, outcomes)]
    try:
        pending = set(tasks)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=progress_every)
            if progress is not None and pending:
                progress(outcomes, time.monotonic() - t0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
    return outcomes
