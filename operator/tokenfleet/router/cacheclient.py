"""Client of the cache service (``tokenfleet cache``): short timeouts, fail open, never fails a request."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import orjson
from yarl import URL

log = logging.getLogger("tokenfleet.router.cache")
BREAKER_ERRORS = 3  # consecutive errors that open the breaker
BREAKER_SECONDS = 5.0  # how long lookups skip the service once the breaker is open


class CacheClient:
    """``POST /v1/lookup`` and ``POST /v1/store``; errors are counted and answered as misses.

    After BREAKER_ERRORS consecutive failures the service is skipped for BREAKER_SECONDS, so a
    dead or hung cache costs one timeout per few seconds instead of one per request.
    """

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout_ms: int, metrics, semantic: bool = True):
        base = url.rstrip("/")
        self.lookup_url = URL(base + "/v1/lookup", encoded=True)
        self.store_url = URL(base + "/v1/store", encoded=True)
        self.invalidations_url = URL(base + "/v1/invalidations", encoded=True)
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000)
        self.metrics = metrics
        self.semantic = semantic
        self._consecutive = 0
        self._open_until = 0.0
        self._tasks: set[asyncio.Task] = set()

    def _failed(self, what: str, err: BaseException) -> None:
        self._consecutive += 1
        if self._consecutive >= BREAKER_ERRORS:
            self._open_until = time.monotonic() + BREAKER_SECONDS
        log.debug("cache %s failed: %r", what, err)

    @staticmethod
    async def _body(resp: aiohttp.ClientResponse):
        """The decoded JSON of a 200 answer; RuntimeError for any other status."""
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}")
        return orjson.loads(await resp.read())

    async def _post(self, url: URL, payload: dict) -> dict:
        async with self.session.post(url, data=orjson.dumps(payload), timeout=self.timeout,
                                     headers={"Content-Type": "application/json"}) as resp:
            data = await self._body(resp)
        self._consecutive = 0
        return data

    async def lookup(self, tenant: str, model: str, request: dict) -> tuple[str, dict] | None:
        """(kind, response) on a hit ('exact' or 'semantic'); None on a miss or any trouble."""
        if time.monotonic() < self._open_until:
            self.metrics.lookup("error")
            return None
        try:
            data = await self._post(self.lookup_url, {"tenant": tenant, "model": model, "request": request,
                                                      "semantic": self.semantic})
        except Exception as err:  # noqa: BLE001 - fail open on anything
            self._failed("lookup", err)
            self.metrics.lookup("error")
            return None
        if not data.get("hit") or not isinstance(data.get("response"), dict):
            self.metrics.lookup("miss")
            return None
        kind = "semantic" if data.get("kind") == "semantic" else "exact"
        self.metrics.lookup("hit_" + kind)
        return kind, data["response"]

    def store(self, tenant: str, model: str, request: dict, response: dict) -> None:
        """Store in the background; the caller never waits for it."""
        if time.monotonic() < self._open_until:
            self.metrics.stored("skipped")
            return
        task = asyncio.ensure_future(self._store(tenant, model, request, response))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _store(self, tenant: str, model: str, request: dict, response: dict) -> None:
        try:
            await self._post(self.store_url, {"tenant": tenant, "model": model, "request": request,
                                              "response": response})
        except Exception as err:  # noqa: BLE001
            self._failed("store", err)
            self.metrics.stored("error")
        else:
            self.metrics.stored("ok")

    async def invalidations(self, query: list[tuple[str, str]]) -> dict:
        """``GET /v1/invalidations``: what a replica invalidated past the follower's cursors; raises on trouble."""
        async with self.session.get(self.invalidations_url, params=query, timeout=self.timeout) as resp:
            data = await self._body(resp)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data

    async def close(self) -> None:
        """Cancel the stores still in flight and wait for them to end (before the session closes)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
