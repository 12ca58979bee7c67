"""The cascade: try tiers in order, judge confidence from logprobs, escalate, skip failed tiers.

Unary requests are judged on the whole answer. Streams are judged on their first
``judgeTokens`` tokens, buffered; once released to the client a stream is never escalated,
and a failure after release ends it with an in-stream error event and ``[DONE]``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator

import orjson

from tokenfleet.router import errors, sse
from tokenfleet.router.economics import clamp_max_tokens
from tokenfleet.router.httpclient import UpstreamIOError
from tokenfleet.router.policies import confidence, is_confident, token_logprobs
from tokenfleet.router.upstream import ColdStartTimeout, Saturated, Tier, TierFailed, call_with_gate, release

if TYPE_CHECKING:
    from tokenfleet.router.core import RouterCore


@dataclass(slots=True)
class Call:
    """One client request, validated and routed: what to send, where, and how to treat the answer."""

    kind: str  # "chat" | "completion"
    path: str  # "/chat/completions" | "/completions"
    tenant: str
    body: dict  # the client's body, fleet default max_tokens applied
    stream: bool
    include_usage: bool  # the client asked for the usage chunk
    want_logprobs: bool  # the client asked for logprobs
    order: list[int]  # tier indices to try, in order
    judge: bool  # judge confidence and escalate on low confidence
    scope: str  # cache scope: fleet name, or the pinned tier's name
    shareable: bool = False  # may share an upstream call / a cache entry with identical requests
    cacheable: bool = False
    key: bytes | None = None  # local exact key (core.local_key)
    started: float = field(default_factory=time.perf_counter)


@dataclass(slots=True)
class Reply:
    """A complete (non-streamed) answer."""

    status: int
    body: bytes
    tier: str = "none"
    cache: str = "miss"
    cost: float | None = 0.0
    response: dict | None = None


@dataclass(slots=True)
class Head:
    """The status line of a streamed answer: the first item of every stream."""

    status: int
    tier: str = "none"
    cache: str = "miss"
    json: bool = False  # an error body follows instead of events


def payload_for(call: Call, tier: Tier, judge: bool) -> bytes:
    """The upstream body: served model name, clamped max_tokens, logprobs and usage the router needs."""
    body = clamp_max_tokens({**call.body, "model": tier.endpoint.served_model}, tier.endpoint.max_output_tokens)
    if judge and not call.want_logprobs:
        body["logprobs"] = True if call.kind == "chat" else 0
    if call.stream:
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return orjson.dumps(body)


class Attempts:
    """Bookkeeping across the tiers one request tries."""

    def __init__(self, core: "RouterCore", call: Call):
        self.core, self.call = core, call
        self.escalations = 0
        self.failures: list[str] = []
        self.saturated = 0
        self.cost = 0.0

    def judging(self, pos: int) -> bool:
        last = pos + 1 >= len(self.call.order)
        return self.call.judge and not last and self.escalations < self.core.config.routing.cascade.max_escalations

    def move_on(self, pos: int, reason: str) -> None:
        if pos + 1 < len(self.call.order):
            tiers = self.core.tiers
            self.core.metrics.escalated(tiers[self.call.order[pos]].name, tiers[self.call.order[pos + 1]].name, reason)
        if reason == "low_confidence":
            self.escalations += 1

    def give_up(self) -> errors.RouterError:
        if self.saturated:
            return errors.saturated()
        return errors.all_failed("; ".join(self.failures) or "no tier to try")

    def confident(self, values: list[float]) -> bool:
        spec = self.core.config.routing.cascade
        return is_confident(confidence(values, spec.confidence), spec.threshold)


async def run_unary(core: "RouterCore", call: Call) -> Reply:
    """Ask tiers in order until one gives an answer that is kept."""
    att = Attempts(core, call)
    for pos, index in enumerate(call.order):
        tier = core.tiers[index]
        judge = att.judging(pos)
        payload = payload_for(call, tier, judge)
        try:
            status, body = await call_with_gate(core.upstream, tier,
                                                lambda: core.upstream.post(tier, call.path, payload))
        except Saturated:
            att.saturated += 1
            att.move_on(pos, "saturated")
            continue
        except TierFailed as err:
            att.failures.append(str(err))
            att.move_on(pos, "tier_error")
            continue
        except ColdStartTimeout as err:
            raise errors.cold_start_timeout(err.tier, err.waited) from None
        if status != 200:  # the tier refused the request itself (4xx): the client's to see
            return Reply(status, body, tier.name, cost=att.cost)
        try:
            response = orjson.loads(body)
            choices = response["choices"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            att.failures.append(f"{tier.name}: malformed response")
            att.move_on(pos, "tier_error")
            continue
        att.cost += core.bill(tier, call.tenant, response.get("usage"))
        if judge:
            if not att.confident(token_logprobs(choices[0]) if choices else []):
                att.move_on(pos, "low_confidence")
                continue
            if not call.want_logprobs:
                for choice in choices:
                    choice["logprobs"] = None
                body = orjson.dumps(response)
        return Reply(200, body, tier.name, "miss", att.cost, response)
    raise att.give_up()


class _Judged(Exception):
    """The stream's first tokens were not confident enough."""


async def _judge(events: AsyncIterator[bytes], buffered: list[bytes], att: Attempts, tier: Tier) -> None:
    """Buffer events until judgeTokens tokens (or the end); raise _Judged when confidence is low."""
    wanted = att.core.config.routing.cascade.judge_tokens
    values: list[float] = []
    try:
        async for event in events:
            buffered.append(event)
            data = sse.event_data(event)
            if data is None:
                continue
            if data == b"[DONE]":
                break
            chunk = orjson.loads(data)
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) == 0:
                    values += token_logprobs(choice)
            if len(values) >= wanted:
                break
    except (TimeoutError, UpstreamIOError, orjson.JSONDecodeError, AttributeError) as err:
        raise TierFailed(tier.name, f"stream broke while judging ({err.__class__.__name__})") from None
    if not att.confident(values):
        raise _Judged()


async def run_stream(core: "RouterCore", call: Call) -> AsyncIterator[Head | bytes]:
    """Yield a Head, then the events of the first tier whose opening is kept."""
    att = Attempts(core, call)
    partial: list[tuple[Tier, int]] = []  # escalated streams: (tier, tokens seen), billed at the end
    for pos, index in enumerate(call.order):
        tier = core.tiers[index]
        judge = att.judging(pos)
        payload = payload_for(call, tier, judge)
        try:
            resp = await call_with_gate(core.upstream, tier,
                                        lambda: core.upstream.open_stream(tier, call.path, payload), hold=True)
        except Saturated:
            att.saturated += 1
            att.move_on(pos, "saturated")
            continue
        except TierFailed as err:
            att.failures.append(str(err))
            att.move_on(pos, "tier_error")
            continue
        except ColdStartTimeout as err:
            raise errors.cold_start_timeout(err.tier, err.waited) from None
        try:
            if resp.status != 200:
                try:
                    body = await resp.read()
                except (TimeoutError, UpstreamIOError) as err:
                    att.failures.append(f"{tier.name}: {err}")
                    att.move_on(pos, "tier_error")
                    continue
                yield Head(resp.status, tier.name, json=True)
                yield body
                return
            events = sse.iter_events(resp.iter_any())
            buffered: list[bytes] = []
            if judge:
                try:
                    await _judge(events, buffered, att, tier)
                except _Judged:
                    partial.append((tier, sum(1 for e in buffered if e != sse.DONE)))
                    att.move_on(pos, "low_confidence")
                    continue
                except TierFailed as err:
                    att.failures.append(str(err))
                    att.move_on(pos, "tier_error")
                    continue
            async for item in _release(core, call, tier, judge, events, buffered, partial):
                yield item
            return
        finally:
            resp.release()
            release(tier)
    raise att.give_up()


_TEXT = re.compile(rb'"(content|text)"\s*:\s*"[^"]')


def _has_text(event: bytes) -> bool:
    """The event carries generated text (not only a role, a finish reason or usage): first-token time."""
    return _TEXT.search(event) is not None


async def _release(core: "RouterCore", call: Call, tier: Tier, judged: bool, events: AsyncIterator[bytes],
                   buffered: list[bytes], partial: list[tuple[Tier, int]]) -> AsyncIterator[Head | bytes]:
    """Send the kept stream: buffered events first, then the rest as they come; bill and cache at the end."""
    assembler = sse.Assembler(call.kind, call.want_logprobs) if call.cacheable else None
    relay = sse.Relay(call.kind, strip_logprobs=judged and not call.want_logprobs,
                      drop_usage=not call.include_usage, assembler=assembler)
    yield Head(200, tier.name)
    first = True
    try:
        for event in buffered:
            out = relay.feed(event)
            if out is not None:
                if first and _has_text(out):
                    core.metrics.first_token(tier.name, time.perf_counter() - call.started)
                    first = False
                yield out
        async for event in events:
            out = relay.feed(event)
            if out is not None:
                if first and _has_text(out):
                    core.metrics.first_token(tier.name, time.perf_counter() - call.started)
                    first = False
                yield out
    except (TimeoutError, UpstreamIOError) as err:
        yield sse.error_event(f"tier {tier.name} failed mid-stream ({err.__class__.__name__})")
        yield sse.DONE
        relay.done = False
    else:
        if not relay.done:
            yield sse.error_event(f"tier {tier.name} ended the stream early")
            yield sse.DONE
    usage = relay.usage or {"prompt_tokens": 0, "completion_tokens": relay.events}
    for earlier, seen in partial:
        core.bill(earlier, call.tenant, {"prompt_tokens": usage.get("prompt_tokens", 0), "completion_tokens": seen})
    core.bill(tier, call.tenant, usage)
    if assembler is not None and relay.done and assembler.ok:
        core.remember(call, assembler.response())
