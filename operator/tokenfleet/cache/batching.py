"""Micro-batching: texts that wait while the embedder is busy share its next call."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np


class Busy(RuntimeError):
    """More texts wait than the model gets through before callers give up: shed this one."""


class MicroBatcher:
    """``await embed(text)`` from many tasks; one worker runs the model on everything queued meanwhile.

    No timer is needed for batching: while one call runs (a few milliseconds), new texts queue up
    and the next call takes them all (up to ``max_batch``). ``window_ms`` > 0 also holds a lone
    text that long for company, trading latency for throughput. With ``max_queue`` texts waiting,
    ``embed`` raises ``Busy`` at once: under overload the queue would otherwise grow until every
    caller has timed out before its turn, and all the model's work would be for nobody.
    """

    def __init__(self, embed: Callable[[list[str]], np.ndarray], max_batch: int = 64, window_ms: float = 0.0,
                 on_batch: Callable[[int], None] | None = None, max_queue: int = 0):
        self._embed = embed
        self.max_batch = max_batch
        self.max_queue = max_queue  # 0: unbounded
        self.window = window_ms / 1000.0
        self.on_batch = on_batch or (lambda n: None)
        self._queue: asyncio.Queue[tuple[str, asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")

    def start(self) -> None:
        """Start the worker on the running loop."""
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="embedding-batcher")

    async def close(self) -> None:
        """Stop the worker; pending callers get an error."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while self._queue is not None and not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(RuntimeError("embedding batcher stopped"))
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def embed(self, text: str) -> np.ndarray:
        """The unit vector of one text."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        if self.max_queue and self._queue.qsize() >= self.max_queue:
            raise Busy(f"{self._queue.qsize()} texts already wait for the embedding model")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((text, future))
        return await future

    async def embed_many(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of several texts, queued together."""
        vectors = await asyncio.gather(*(self.embed(t) for t in texts))
        return np.vstack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)

    async def _take(self) -> list[tuple[str, asyncio.Future]]:
        batch = [await self._queue.get()]
        if self.window > 0:
            deadline = asyncio.get_running_loop().time() + self.window
            while len(batch) < self.max_batch:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
        while len(batch) < self.max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return [(t, f) for t, f in batch if not f.done()]  # callers that gave up are skipped

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._take()
            if not batch:
                continue
            try:
                vectors = await loop.run_in_executor(self._pool, self._embed, [t for t, _ in batch])
            except Exception as err:  # noqa: BLE001 - handed to every caller of this batch
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            self.on_batch(len(batch))
            for (_, future), vector in zip(batch, vectors):
                if not future.done():
                    future.set_result(vector)
