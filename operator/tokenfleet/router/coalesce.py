"""Coalescing: identical in-flight requests share one upstream call; streams fan out to every subscriber."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable


class Flight:
    """One shared stream: items recorded as they come, replayed to each subscriber from the start."""

    def __init__(self) -> None:
        self.items: list = []
        self.done = False
        self.error: BaseException | None = None
        self.subscribers = 0
        self.task: asyncio.Task | None = None
        self.on_abandon: Callable[[], None] | None = None  # called when the last subscriber leaves early
        self._changed = asyncio.Event()

    def push(self, item) -> None:
        self.items.append(item)
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.done = True
        self._wake()

    def _wake(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def follow(self) -> AsyncIterator:
        """Every item of the flight, from the first, as they arrive; re-raises the producer's error."""
        self.subscribers += 1
        sent = 0
        try:
            while True:
                changed = self._changed
                while sent < len(self.items):
                    yield self.items[sent]
                    sent += 1
                if self.done:
                    if self.error is not None:
                        raise self.error
                    return
                await changed.wait()
        finally:
            self.subscribers -= 1
            if self.subscribers == 0 and not self.done and self.task is not None:
                if self.on_abandon is not None:
                    self.on_abandon()  # no newcomer may join a flight that is being cancelled
                self.task.cancel()  # nobody listens any more


class _Shared:
    """One shared unary call and how many callers wait for it."""

    __slots__ = ("task", "waiters")

    def __init__(self) -> None:
        self.task: asyncio.Future | None = None
        self.waiters = 0


def _forget(table: dict, key: bytes, entry) -> None:
    """Drop ``key`` from ``table`` if it still maps to ``entry`` (a newer call may have taken the key)."""
    if table.get(key) is entry:
        del table[key]


class Coalescer:
    """Keyed in-flight calls; ``window`` seconds of admission delay before a leader calls upstream."""

    def __init__(self, window: float, metrics) -> None:
        self.window = window
        self.metrics = metrics
        self._unary: dict[bytes, _Shared] = {}
        self._streams: dict[bytes, Flight] = {}

    async def unary(self, key: bytes, factory: Callable[[], Awaitable]) -> tuple[object, bool]:
        """(result, led): the first caller starts ``factory``; identical callers meanwhile share its result.

        The call runs as its own task: a caller that leaves (its client hung up) does not end it for
        the others; when the last one leaves, it is cancelled, which closes the upstream request.
        """
        shared = self._unary.get(key)
        led = shared is None
        if led:
            shared = self._unary[key] = _Shared()
            shared.task = asyncio.ensure_future(self._lead(key, shared, factory))
        else:
            self.metrics.coalesced.inc()
        shared.waiters += 1
        try:
            return await asyncio.shield(shared.task), led
        finally:
            shared.waiters -= 1
            if shared.waiters == 0 and not shared.task.done():
                _forget(self._unary, key, shared)  # no newcomer may join a call that is being cancelled
                shared.task.cancel()

    async def _lead(self, key: bytes, shared: "_Shared", factory: Callable[[], Awaitable]):
        try:
            if self.window:
                await asyncio.sleep(self.window)
            return await factory()
        finally:
            _forget(self._unary, key, shared)

    def stream(self, key: bytes, factory: Callable[[], AsyncIterator]) -> tuple[AsyncIterator, bool]:
        """(items, led): subscribe to the in-flight stream for ``key``, starting it if there is none."""
        flight = self._streams.get(key)
        if flight is not None:
            self.metrics.coalesced.inc()
            return flight.follow(), False
        flight = self._streams[key] = Flight()
        flight.on_abandon = lambda: _forget(self._streams, key, flight)
        flight.task = asyncio.ensure_future(self._produce(key, flight, factory))
        return flight.follow(), True

    async def _produce(self, key: bytes, flight: Flight, factory: Callable[[], AsyncIterator]) -> None:
        error: BaseException | None = None
        try:
            if self.window:
                await asyncio.sleep(self.window)
            async for item in factory():
                flight.push(item)
        except asyncio.CancelledError:
            error = RuntimeError("the shared stream was cancelled")
        except Exception as err:  # noqa: BLE001 - handed to every subscriber
            error = err
        finally:
            _forget(self._streams, key, flight)
            flight.finish(error)
