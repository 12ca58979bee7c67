"""Tier clients: one pooled keep-alive aiohttp session, per-tier concurrency gates, cold-start waits."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from yarl import URL

from tokenfleet.api.routerconfig import LimitsConfig, TierEndpoint

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
STREAM_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}
PROBE_INTERVAL = 0.25  # seconds between readiness probes of a tier starting from zero
RETRYABLE = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


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
    """At most ``concurrency`` calls in flight; at most ``queue`` more waiting; beyond that, saturated."""

    def __init__(self, concurrency: int, queue: int):
        self._sem = asyncio.Semaphore(concurrency)
        self.queue = queue
        self.waiting = 0

    async def enter(self) -> None:
        if self._sem.locked():
            if self.waiting >= self.queue:
                raise Saturated()
            self.waiting += 1
            try:
                await self._sem.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._sem.acquire()

    def leave(self) -> None:
        self._sem.release()


class Tier:
    """One tier as the router uses it: endpoint, URLs, gate, metric children, cold-start state."""

    def __init__(self, index: int, endpoint: TierEndpoint, inflight, waiting):
        self.index = index
        self.endpoint = endpoint
        self.name = endpoint.name
        base = endpoint.url.rstrip("/")
        self.urls = {p: URL(base + p, encoded=True) for p in ("/chat/completions", "/completions", "/models")}
        self.gate = Gate(endpoint.max_concurrency, endpoint.max_queue)
        self.inflight, self.waiting = inflight, waiting
        self._ready: asyncio.Future | None = None


class Upstream:
    """HTTP calls to tiers; connection, timeout and status failures become TierFailed."""

    def __init__(self, limits: LimitsConfig):
        self.limits = limits
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.limits.connect_timeout_seconds,
                                        sock_read=self.limits.upstream_timeout_seconds)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                             skip_auto_headers=("User-Agent",))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def _request(self, tier: Tier, path: str, payload: bytes, stream: bool) -> aiohttp.ClientResponse:
        headers = STREAM_HEADERS if stream else JSON_HEADERS
        for attempt in (0, 1):  # a keep-alive connection the tier closed meanwhile: retry once
            try:
                return await self.session.post(tier.urls[path], data=payload, headers=headers)
            except aiohttp.ClientConnectorError:  # refused, no route, DNS: nothing listens (yet)
                raise TierFailed(tier.name, "unreachable", starting=True) from None
            except RETRYABLE as err:
                if attempt:
                    raise TierFailed(tier.name, f"connection error ({err.__class__.__name__})") from None
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
                raise TierFailed(tier.name, "timeout") from None
            except aiohttp.ClientError as err:
                raise TierFailed(tier.name, f"client error ({err.__class__.__name__})") from None
        raise AssertionError("unreachable")

    async def post(self, tier: Tier, path: str, payload: bytes) -> tuple[int, bytes]:
        """Non-streaming call: (status, body) for statuses below 500 except 429."""
        resp = await self._request(tier, path, payload, stream=False)
        try:
            body = await resp.read()
        except (asyncio.TimeoutError, aiohttp.ClientError) as err:
            raise TierFailed(tier.name, f"read failed ({err.__class__.__name__})") from None
        finally:
            resp.release()
        _check_status(tier, resp.status)
        return resp.status, body

    async def open_stream(self, tier: Tier, path: str, payload: bytes) -> aiohttp.ClientResponse:
        """Streaming call: the open response (caller reads and releases it) for statuses below 500 except 429."""
        resp = await self._request(tier, path, payload, stream=True)
        if resp.status >= 500 or resp.status == 429:
            resp.release()
        _check_status(tier, resp.status)
        return resp

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
        timeout = aiohttp.ClientTimeout(total=2)
        while True:
            try:
                async with self.session.get(tier.urls["/models"], timeout=timeout) as resp:
                    if resp.status == 200:
                        return True
            except (asyncio.TimeoutError, aiohttp.ClientError):
                pass
            if time.monotonic() + PROBE_INTERVAL > deadline:
                return False
            await asyncio.sleep(PROBE_INTERVAL)


def _check_status(tier: Tier, status: int) -> None:
    if status >= 500 or status == 429:
        raise TierFailed(tier.name, "status", status, starting=status == 503)


async def call_with_gate(upstream: Upstream, tier: Tier, fn, *, hold: bool = False):
    """Run ``fn()`` inside the tier's gate; wait for a tier scaling from zero and retry once.

    Raises Saturated, TierFailed or ColdStartTimeout. With ``hold`` the slot stays taken on
    success (a stream being read) and the caller must call ``release(tier)``.
    """
    for attempt in (0, 1):
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
