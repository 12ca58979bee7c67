"""The cascade: try tiers in order, judge confidence from logprobs, escalate, skip failed tiers.

Unary requests are judged on the whole answer. Streams are judged on their first
``judgeTokens`` tokens, buffered; once released to the client a stream is never escalated,
and a failure after release ends it with an in-stream error event and ``[DONE]``. A tier whose
context window the request does not fit (its 400 says so) passes it to the next tier; the last
tier's refusal is the client's to see.
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
from tokenfleet.router.policies import confidence, exceeds_context_window, is_confident, token_logprobs
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


@dataclass(slots=True)
class Cost:
    """What a streamed answer cost (USD), known only at its end: the item before its final ``[DONE]``."""

    usd: float


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
        self.too_long: list[str] = []  # tiers whose context window the request exceeds

    def passes_on(self, pos: int, tier: Tier, status: int, body: bytes) -> bool:
        """The tier refused the request (4xx). True when the next tier should have it: the request does
        not fit this tier's context window and a later tier may have a longer one. Otherwise the
        refusal is the client's to see."""
        if pos + 1 >= len(self.call.order) or not exceeds_context_window(status, body):
            return False
        self.too_long.append(tier.name)
        self.move_on(pos, "context_length")
        return True

    def judging(self, pos: int) -> bool:
        last = pos + 1 >= len(self.call.order)
        return self.call.judge and not last and self.escalations < self.core.config.routing.cascade.max_escalations

    def move_on(self, pos: int, reason: str) -> None:
        if pos + 1 < len(self.call.order):
            tiers = self.core.tiers
            self.core.metrics.escalated(tiers[self.call.order[pos]].name, tiers[self.call.order[pos + 1]].name, reason)
        if reason == "low_confidence":
            self.escalations += 1

    def failed(self, pos: int, why: str) -> None:
        """The tier at ``pos`` gave no usable answer: remember why, count it, try the next."""
        self.failures.append(why)
        self.move_on(pos, "tier_error")

    def give_up(self) -> errors.RouterError:
        if self.saturated:
            return errors.saturated()
        too_long = [f"{name}: the request exceeds its context window" for name in self.too_long]
        return errors.all_failed("; ".join(too_long + self.failures) or "no tier to try")

    def confident(self, values: list[float]) -> bool:
        spec = self.core.config.routing.cascade
        return is_confident(confidence(values, spec.confidence), spec.threshold)

    async def open(self, pos: int, tier: Tier, fn, *, hold: bool = False):
        """``fn()`` inside the tier's gate; None when the tier is skipped (saturated or failed, counted)."""
        try:
            return await call_with_gate(self.core.upstream, tier, fn, hold=hold)
        except Saturated:
            self.saturated += 1
            self.move_on(pos, "saturated")
        except TierFailed as err:
            self.failed(pos, str(err))
        except ColdStartTimeout as err:
            raise errors.cold_start_timeout(err.tier, err.waited) from None
        return None


def _answer(body: bytes) -> tuple[dict, list[dict]] | None:
    """(response, choices) of a tier's 200 body; None when it is not a chat or completion object."""
    try:
        response = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        return None
    return response, choices


async def run_unary(core: "RouterCore", call: Call) -> Reply:
    """Ask tiers in order until one gives an answer that is kept."""
    att = Attempts(core, call)
    for pos, index in enumerate(call.order):
        tier = core.tiers[index]
        judge = att.judging(pos)
        payload = payload_for(call, tier, judge)
        result = await att.open(pos, tier, lambda: core.upstream.post(tier, call.path, payload))
        if result is None:
            continue
        status, body = result
        if status != 200:  # the tier refused the request itself (4xx)
            if att.passes_on(pos, tier, status, body):
                continue
            return Reply(status, body, tier.name, cost=att.cost)
        answer = _answer(body)
        if answer is None:
            att.failed(pos, f"{tier.name}: malformed response")
            continue
        response, choices = answer
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


async def _opening(events: AsyncIterator[bytes], buffered: list[bytes], wanted: int, tier: Tier) -> list[float]:
    """Buffer events until ``wanted`` tokens of choice 0 (or the end); their logprobs."""
    values: list[float] = []
    try:
        async for event in events:
            buffered.append(event)
            data = sse.event_data(event)
            if data is None:
                continue
            if data == b"[DONE]":
                break
            for choice in orjson.loads(data).get("choices") or ():
                if choice.get("index", 0) == 0:
                    values += token_logprobs(choice)
            if len(values) >= wanted:
                break
    except (TimeoutError, UpstreamIOError, orjson.JSONDecodeError, AttributeError) as err:
        raise TierFailed(tier.name, f"stream broke while judging ({err.__class__.__name__})") from None
    return values


async def _kept(att: Attempts, pos: int, tier: Tier, events: AsyncIterator[bytes], buffered: list[bytes],
                partial: list[tuple[Tier, int]]) -> bool:
    """Judge a stream on its opening; False (escalated or failed, counted) when it must not be released."""
    try:
        values = await _opening(events, buffered, att.core.config.routing.cascade.judge_tokens, tier)
    except TierFailed as err:
        att.failed(pos, str(err))
        return False
    if att.confident(values):
        return True
    partial.append((tier, len(values)))
    att.move_on(pos, "low_confidence")
    return False


async def run_stream(core: "RouterCore", call: Call) -> AsyncIterator[Head | bytes | Cost]:
    """Yield a Head, then the events of the first tier whose opening is kept (a Cost before the last [DONE])."""
    att = Attempts(core, call)
    partial: list[tuple[Tier, int]] = []  # escalated streams: (tier, tokens judged), billed at the end
    for pos, index in enumerate(call.order):
        tier = core.tiers[index]
        judge = att.judging(pos)
        payload = payload_for(call, tier, judge)
        resp = await att.open(pos, tier, lambda: core.upstream.open_stream(tier, call.path, payload), hold=True)
        if resp is None:
            continue
        try:
            if resp.status != 200:  # the tier refused the request itself (4xx)
                try:
                    body = await resp.read()
                except (TimeoutError, UpstreamIOError) as err:
                    att.failed(pos, f"{tier.name}: {err}")
                    continue
                if att.passes_on(pos, tier, resp.status, body):
                    continue
                yield Head(resp.status, tier.name, json=True)
                yield body
                return
            events = sse.iter_events(resp.iter_any())
            buffered: list[bytes] = []
            if judge and not await _kept(att, pos, tier, events, buffered, partial):
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
                   buffered: list[bytes], partial: list[tuple[Tier, int]]) -> AsyncIterator[Head | bytes | Cost]:
    """Send the kept stream: buffered events first, then the rest as they come, then its Cost and [DONE].

    The tokens are billed even when the client leaves early; the answer is cached only when complete.
    """
    assembler = sse.Assembler(call.kind, call.want_logprobs) if call.cacheable else None
    relay = sse.Relay(call.kind, strip_logprobs=judged and not call.want_logprobs,
                      drop_usage=not call.include_usage, assembler=assembler)
    waiting_first = True

    def emit(event: bytes) -> bytes | None:
        nonlocal waiting_first
        out = relay.feed(event)
        if out is None or relay.done:  # [DONE] is held back until the cost is known
            return None
        if waiting_first and _has_text(out):
            core.metrics.first_token(tier.name, time.perf_counter() - call.started)
            waiting_first = False
        return out

    yield Head(200, tier.name)
    billed = False
    try:
        ending: list[bytes] = []
        try:
            for event in buffered:
                if (out := emit(event)) is not None:
                    yield out
            async for event in events:
                if (out := emit(event)) is not None:
                    yield out
        except (TimeoutError, UpstreamIOError) as err:
            ending.append(sse.error_event(f"tier {tier.name} failed mid-stream ({err.__class__.__name__})"))
        else:
            if not relay.done:
                ending.append(sse.error_event(f"tier {tier.name} ended the stream early"))
        billed = True
        yield Cost(_bill_stream(core, call, tier, relay, partial))
        for event in (*ending, sse.DONE):
            yield event
        if assembler is not None and not ending and assembler.ok:
            core.remember(call, assembler.response())
    finally:
        if not billed:  # the client left: what the tiers generated still cost
            _bill_stream(core, call, tier, relay, partial)


def _bill_stream(core: "RouterCore", call: Call, tier: Tier, relay: sse.Relay,
                 partial: list[tuple[Tier, int]]) -> float:
    """Bill the released stream and the escalated openings before it; the stream's total cost in USD."""
    usage = relay.usage or {"prompt_tokens": 0, "completion_tokens": relay.events}
    cost = 0.0
    for earlier, seen in partial:
        cost += core.bill(earlier, call.tenant, {"prompt_tokens": usage.get("prompt_tokens", 0),
                                                 "completion_tokens": seen})
    return cost + core.bill(tier, call.tenant, usage)
