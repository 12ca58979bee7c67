"""The router's request logic: validate, route, cache, coalesce and call tiers (no HTTP server code here)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from typing import AsyncIterator

import orjson

from tokenfleet import cachekey
from tokenfleet.cache.invalidations import Follower
from tokenfleet.router import errors, sse
from tokenfleet.router.cacheclient import CacheClient
from tokenfleet.router.cascade import Call, Cost, Head, Reply, run_stream, run_unary
from tokenfleet.router.coalesce import Coalescer
from tokenfleet.router.economics import MAX_TOKEN_FIELDS, Budget, request_cost, with_default_max_tokens
from tokenfleet.router.localcache import LocalCache
from tokenfleet.router.metrics import RouterMetrics
from tokenfleet.router.policies import load_classifier, start_tier
from tokenfleet.router.settings import RouterSettings
from tokenfleet.router.upstream import Tier, Upstream

log = logging.getLogger("tokenfleet.router")
PATHS = {"chat": "/chat/completions", "completion": "/completions"}


class RouterCore:
    """State shared by all requests: tiers, clients, caches, coalescer, budget, metrics."""

    def __init__(self, settings: RouterSettings):
        self.settings = settings
        self.config = cfg = settings.config
        self.metrics = RouterMetrics(cfg.fleet)
        self.upstream = Upstream(cfg.limits)
        self.tiers = [Tier(i, ep, *self.metrics.tier_gauges(ep.name), cfg.limits) for i, ep in enumerate(cfg.tiers)]
        self.by_model: dict[str, int] = {}
        for tier in reversed(self.tiers):  # a tier's name wins over another's served model name
            self.by_model[tier.endpoint.served_model] = tier.index
        for tier in self.tiers:
            self.by_model[tier.name] = tier.index
        self.local = LocalCache(cfg.cache.local_entries, cfg.cache.local_ttl_seconds)
        self.cache: CacheClient | None = None
        self.coalescer = Coalescer(cfg.coalescing.window_ms / 1000, self.metrics) if cfg.coalescing.enabled else None
        self.budget = Budget(cfg.budget.monthly_usd, cfg.budget.on_exceeded)
        if cfg.budget.monthly_usd is not None:
            self.metrics.budget_limit(cfg.budget.monthly_usd)
        self.classifier = load_classifier(settings.classifier or cfg.routing.complexity.classifier)
        self.caching = self.local.enabled or cfg.cache.url is not None
        self._follower: asyncio.Task | None = None

    async def start(self) -> None:
        await self.upstream.start()
        self.upstream.tiers = self.tiers
        cache = self.config.cache
        if cache.url:
            self.cache = CacheClient(self.upstream.session, cache.url, cache.timeout_ms, self.metrics)
            if self.local.enabled and cache.invalidation_poll_seconds > 0:
                self._follower = asyncio.ensure_future(self.follow_invalidations(cache.invalidation_poll_seconds))

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
        if self.cache is not None:
            await self.cache.close()
        await self.upstream.close()

    async def follow_invalidations(self, every: float) -> None:
        """Every ``every`` seconds, drop from the local LRU what the cache service invalidated
        (``cache.invalidations``): without it an invalidated answer lives out localTtlSeconds here."""
        follower = Follower()
        while True:
            await asyncio.sleep(every)
            try:
                scopes = follower.follow(await self.cache.invalidations(follower.query()))
            except Exception as err:  # noqa: BLE001 - keep following; counted
                self.metrics.invalidation_poll("error")
                log.debug("invalidation poll failed: %r", err)
                continue
            self.metrics.invalidation_poll("ok", self.local.drop(scopes))

    # ------------------------------------------------------------------ request preparation

    def prepare(self, kind: str, tenant: str, raw: bytes) -> Call:
        """Validate the body and decide tiers, judging and caching; raises RouterError (4xx)."""
        body = _parse(kind, raw)
        body = with_default_max_tokens(body, self.config.default_max_tokens)
        stream = bool(body.get("stream"))
        options = body.get("stream_options")
        call = Call(
            kind=kind, path=PATHS[kind], tenant=tenant, body=body, stream=stream,
            include_usage=stream and isinstance(options, dict) and bool(options.get("include_usage")),
            want_logprobs=bool(body.get("logprobs")) if kind == "chat" else body.get("logprobs") is not None,
            order=[], judge=False, scope=self.config.fleet,
        )
        self._route(call, body["model"])
        if self.caching or self.coalescer is not None:  # else nothing is shared: skip the key work
            call.shareable = self.config.cache.cache_nondeterministic or cachekey.is_deterministic(body)
            call.cacheable = call.shareable and self.caching
            if call.shareable:
                call.key = local_key(tenant, call.scope, body)
        return call

    def _route(self, call: Call, model: str) -> None:
        n = len(self.tiers)
        pinned = self.by_model.get(model)
        if self.budget.exceeded():
            if self.budget.on_exceeded == "reject":
                raise errors.budget_exceeded(self.budget.limit or 0.0)
            call.order = [0]
        elif pinned is not None:
            call.order, call.scope = [pinned], self.tiers[pinned].name
        else:
            routing = self.config.routing
            start = 0
            if routing.mode == "complexity":
                try:
                    score = float(self.classifier(call.body))
                except Exception:  # noqa: BLE001 - a broken plug-in must not fail requests
                    log.exception("complexity classifier failed; starting at the first tier")
                    score = 0.0
                start = start_tier(score, routing.complexity.boundaries, n)
            call.order = list(range(start, n))
            call.judge = routing.mode != "fixed"

    # ------------------------------------------------------------------ answering

    async def unary(self, call: Call) -> Reply:
        """A complete answer: local cache, then a shared in-flight call, then cache service and tiers."""
        if call.cacheable:
            entry = self.local.get(call.key)
            if entry is not None:
                self._hit("local", entry.response)
                return Reply(200, entry.body, "none", "local", 0.0, entry.response)
        if call.key is not None and self.coalescer is not None:
            reply, led = await self.coalescer.unary(call.key + b"|u", lambda: self._unary_miss(call))
            if led:
                return reply
            return dataclasses.replace(reply, cache="coalesced" if reply.cache == "miss" else reply.cache, cost=0.0)
        return await self._unary_miss(call)

    async def _unary_miss(self, call: Call) -> Reply:
        if call.cacheable:
            hit = await self._lookup(call)
            if hit is not None:
                kind, response = hit
                return Reply(200, orjson.dumps(response), "none", kind, 0.0, response)
        reply = await run_unary(self, call)
        if call.cacheable and reply.status == 200:
            self.remember(call, reply.response, reply.body)
        return reply

    def stream(self, call: Call) -> tuple[AsyncIterator[Head | bytes | Cost], bool]:
        """(items, shared): a Head, SSE events, a Cost before the last; ``shared``: riding on another's call."""
        if call.cacheable:
            entry = self.local.get(call.key)
            if entry is not None:
                self._hit("local", entry.response)
                return _replayed(entry.response, call, "local"), False
        if call.key is not None and self.coalescer is not None:
            suffix = b"|s1" if call.include_usage else b"|s0"
            items, led = self.coalescer.stream(call.key + suffix, lambda: self._stream_miss(call))
            return items, not led
        return self._stream_miss(call), False

    async def _stream_miss(self, call: Call) -> AsyncIterator[Head | bytes | Cost]:
        hit = await self._lookup(call) if call.cacheable else None
        if hit is not None:
            async for item in _replayed(hit[1], call, hit[0]):
                yield item
            return
        async for item in run_stream(self, call):
            yield item

    # ------------------------------------------------------------------ caches and billing

    async def _lookup(self, call: Call) -> tuple[str, dict] | None:
        """The cache service's answer to a cacheable call (the local LRU was asked already)."""
        if self.cache is None:
            self.metrics.lookup("miss")
            return None
        hit = await self.cache.lookup(call.tenant, call.scope, call.body)
        if hit is not None:
            self.local.put(call.key, hit[1], orjson.dumps(hit[1]), call.tenant, call.scope)
            self._hit(hit[0], hit[1], count=False)
        return hit

    def _hit(self, kind: str, response: dict, count: bool = True) -> None:
        if count:
            self.metrics.lookup("hit_" + kind)
        usage = response.get("usage") or {}
        self.metrics.saved(kind, int(usage.get("completion_tokens") or 0))

    def remember(self, call: Call, response: dict | None, body: bytes | None = None) -> None:
        """Cache a finished answer, unless it is an error or was cut short (finish_reason length)."""
        if not call.cacheable or not storable(response):
            return
        body = body if body is not None else orjson.dumps(response)
        self.local.put(call.key, response, body, call.tenant, call.scope)
        if self.cache is not None:
            self.cache.store(call.tenant, call.scope, call.body, response)

    def bill(self, tier: Tier, tenant: str, usage: dict | None) -> float:
        """Record one tier call's tokens and cost; returns the cost in USD."""
        usage = usage or {}
        tokens_in = int(usage.get("prompt_tokens") or 0)
        tokens_out = int(usage.get("completion_tokens") or 0)
        cost = request_cost(tier.endpoint, tokens_in, tokens_out)
        spend = self.budget.add(cost)
        self.metrics.billed(tier.name, tenant, tokens_in, tokens_out, cost, spend)
        return cost

    def models(self) -> bytes:
        names = [self.config.fleet, "auto", *(t.name for t in self.tiers)]
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "tokenfleet"} for n in dict.fromkeys(names)]
        return orjson.dumps({"object": "list", "data": data})


def local_key(tenant: str, scope: str, body: dict) -> bytes:
    """The exact key's fields (cachekey.exact_payload) through orjson: several times faster than
    ``cachekey.exact_key`` and only ever compared inside this process (local LRU, coalescing)."""
    payload = cachekey.exact_payload(tenant, scope, body)
    try:
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).digest()
    except TypeError:  # what orjson refuses (e.g. huge integers): the shared key
        return cachekey.exact_key(tenant, scope, body).encode()


def storable(response: dict | None) -> bool:
    """A complete, successful answer: every choice finished for a reason other than length."""
    if not isinstance(response, dict) or "error" in response or not response.get("choices"):
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") not in (None, "length") for c in response["choices"])


async def _replayed(response: dict, call: Call, kind: str) -> AsyncIterator[Head | bytes | Cost]:
    """A cached answer as a stream: a Head, the events, a zero Cost, then ``[DONE]``."""
    yield Head(200, "none", kind)
    events = sse.replay(response, call.kind, call.include_usage)
    for event in events[:-1]:
        yield event
    yield Cost(0.0)
    yield events[-1]


def _parse(kind: str, raw: bytes) -> dict:
    """The request body as a dict, with the fields the router relies on checked (400 otherwise)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise errors.bad_request(f"malformed JSON body: {err}", "invalid_json") from None
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON object", "invalid_json")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise errors.bad_request("you must provide a model parameter", "missing_required_parameter", "model")
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise errors.bad_request("'messages' must be a non-empty list", "missing_required_parameter", "messages")
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise errors.bad_request("each message must be an object with a 'role'", "invalid_value", "messages")
    elif not isinstance(body.get("prompt"), (str, list)):
        raise errors.bad_request("'prompt' must be a string or a list", "missing_required_parameter", "prompt")
    _check_types(body)
    return body


NUMBER_FIELDS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")  # cache keys read them as floats
POSITIVE_INT_FIELDS = (*MAX_TOKEN_FIELDS, "n")


def _check_types(body: dict) -> None:
    """The fields the router reads (cache keys, caps, streaming) have usable types; 400 otherwise."""
    for field in POSITIVE_INT_FIELDS:
        value = body.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise errors.bad_request(f"'{field}' must be a positive integer", "invalid_value", field)
    for field in NUMBER_FIELDS:
        value = body.get(field)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise errors.bad_request(f"'{field}' must be a number", "invalid_value", field)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise errors.bad_request("'stream_options' must be an object", "invalid_value", "stream_options")
