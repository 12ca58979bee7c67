"""Tier clients: one pooled keep-alive aiohttp session, per-tier concurrency gates, cold-start waits."""

from __future__ import annotations

import asyncio
import time
from collections import deque

import aiohttp

from tokenfleet.api.routerconfig import LimitsConfig, TierEndpoint
from tokenfleet.router.httpclient import ConnectFailed, Pool, Response, UpstreamIOError

PROBE_INTERVAL = 0.25  # seconds between readiness probes of a tier starting from zero
EVENT_STREAM = b"text/event-stream"


class TierFailed(Exception):
    """The tier did not answer usefully: unreachable, timed out, or a 5xx/429 status."""

    def __init__(self, tier: str, reason: str, status: int | None = None, starting: bool = False):
        super().__init__(f"{tier}: {reason}" + (f" {status}" if status else ""))
        self.tier, self.reason, self.status, self.starting = tier, reason, status, starting


class Saturated(Exception):
    """The tier's in-flight slots and its queue are full."""


class ColdStartTimeout(Exception):
    """A tier that scales to zero did not become ready within limits.coldStartWaitSeconds."""

    def __init__(self, tier: str, waited: float):
        super().__init__(tier)
        self.tier, self.waited = tier, waited


class Gate:
    """At most ``concurrency`` calls in flight; at most ``queue`` more waiting (FIFO); beyond that, saturated."""

    def __init__(self, concurrency: int, queue: int):
        self.concurrency = concurrency
        self.queue = queue
        self.inflight = 0
        self._waiters: deque[asyncio.Future] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_enter(self) -> bool:
        """Take a free slot at once if there is one and nobody queues for it (no coroutine on the fast path)."""
        if self.inflight < self.concurrency and not self._waiters:
            self.inflight += 1
            return True
        return False

    async def enter(self) -> None:
        if self.try_enter():
            return
        if len(self._waiters) >= self.queue:
            raise Saturated()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # leave() hands its slot over: inflight stays counted
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # the slot arrived as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def leave(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.inflight -= 1


class Tier:
    """One tier as the router uses it: endpoint, URLs, gate, metric children, cold-start state."""

    def __init__(self, index: int, endpoint: TierEndpoint, inflight, waiting, limits: LimitsConfig):
        self.index = index
        self.endpoint = endpoint
        self.name = endpoint.name
        self.pool = Pool(endpoint.url, limits.connect_timeout_seconds, limits.upstream_timeout_seconds)
        self.gate = Gate(endpoint.max_concurrency, endpoint.max_queue)
        self.inflight, self.waiting = inflight, waiting
        self._ready: asyncio.Future | None = None


class Upstream:
    """HTTP calls to tiers; connection, timeout and status failures become TierFailed.

    Tier calls use the pooled fast client (httpclient.py); the aiohttp session serves the
    cache service client.
    """

    def __init__(self, limits: LimitsConfig):
        self.limits = limits
        self.session: aiohttp.ClientSession | None = None
        self.tiers: list[Tier] = []  # set by the core: their pools and readiness probes close with this

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                             skip_auto_headers=("User-Agent",))

    async def close(self) -> None:
        for tier in self.tiers:
            if tier._ready is not None:
                tier._ready.cancel()
            tier.pool.close()
        if self.session is not None:
            await self.session.close()

    async def _request(self, tier: Tier, path: str, payload: bytes, accept: bytes = b"application/json",
                       method: bytes = b"POST") -> Response:
        """The tier's answer once its status line is in; TierFailed for what counts against the tier."""
        try:
            resp = await tier.pool.request(method, path, payload, accept)
        except ConnectFailed:  # refused, no route, connect timeout: nothing listens (yet)
            raise TierFailed(tier.name, "unreachable", starting=True) from None
        except UpstreamIOError as err:
            raise TierFailed(tier.name, f"connection error ({err})") from None
        except TimeoutError:
            raise TierFailed(tier.name, "timeout") from None
        if resp.status >= 500 or resp.status == 429:
            resp.release()
            raise TierFailed(tier.name, "status", resp.status, starting=resp.status == 503)
        return resp

    async def post(self, tier: Tier, path: str, payload: bytes) -> tuple[int, bytes]:
        """Non-streaming call: (status, body) for statuses below 500 except 429."""
        resp = await self._request(tier, path, payload)
        try:
            if resp.complete:  # the whole answer came with the status line: no coroutine to read it
                body = b"".join(resp.chunks)
                resp.release()
                return resp.status, body
            return resp.status, await resp.read()
        except (UpstreamIOError, TimeoutError) as err:
            raise TierFailed(tier.name, f"read failed ({err})") from None
        finally:
            resp.release()

    async def open_stream(self, tier: Tier, path: str, payload: bytes) -> Response:
        """Streaming call: the open response (caller reads ``iter_any`` and releases it)."""
        return await self._request(tier, path, payload, EVENT_STREAM)

    async def wait_ready(self, tier: Tier) -> bool:
        """Wait (shared by every caller) until the tier answers GET /models, at most coldStartWaitSeconds."""
        if tier._ready is None or tier._ready.done():
            tier._ready = asyncio.ensure_future(self._probe(tier, self.limits.cold_start_wait_seconds))
        tier.waiting.inc()
        try:
            return await asyncio.shield(tier._ready)
        finally:
            tier.waiting.dec()

    async def _probe(self, tier: Tier, budget: float) -> bool:
        deadline = time.monotonic() + budget
        while True:
            try:
                await asyncio.wait_for(self._get_models(tier), 2)
                return True
            except (TierFailed, asyncio.TimeoutError):
                pass
            if time.monotonic() + PROBE_INTERVAL > deadline:
                return False
            await asyncio.sleep(PROBE_INTERVAL)

    async def _get_models(self, tier: Tier) -> None:
        resp = await self._request(tier, "/models", b"", method=b"GET")
        try:
            await resp.read()
        except (UpstreamIOError, TimeoutError) as err:
            raise TierFailed(tier.name, f"probe failed ({err})") from None
        if resp.status != 200:
            raise TierFailed(tier.name, "status", resp.status, starting=True)


async def call_with_gate(upstream: Upstream, tier: Tier, fn, *, hold: bool = False):
    """Run ``fn()`` inside the tier's gate; wait for a tier scaling from zero and retry once.

    Raises Saturated, TierFailed or ColdStartTimeout. With ``hold`` the slot stays taken on
    success (a stream being read) and the caller must call ``release(tier)``.
    """
    for attempt in (0, 1):
        if not tier.gate.try_enter():
            await tier.gate.enter()
        tier.inflight.inc()
        try:
            result = await fn()
        except TierFailed as err:
            release(tier)
            if attempt or not (tier.endpoint.scales_to_zero and err.starting):
                raise
        except BaseException:
            release(tier)
            raise
        else:
            if not hold:
                release(tier)
            return result
        if not await upstream.wait_ready(tier):
            raise ColdStartTimeout(tier.name, upstream.limits.cold_start_wait_seconds)
    raise AssertionError("unreachable")


def release(tier: Tier) -> None:
    tier.inflight.dec()
    tier.gate.leave()
