"""The emulator's engine loop: steps the batch simulator in real time and hands tokens to the requests."""

from __future__ import annotations

import asyncio
import logging

from tokenfleet.engine.answers import Choice
from tokenfleet.engine.metrics import EngineMetrics
from tokenfleet.engine.prefixcache import PrefixCache
from tokenfleet.engine.settings import EngineSettings
from tokenfleet.engine.simulator import BatchSimulator

log = logging.getLogger(__name__)
MAX_LAG_S = 0.25  # past this much lag behind the model's clock (CPU starved), stop trying to catch up


class Job:
    """One HTTP request's sequences, as its handler waits for them."""

    __slots__ = ("choices", "produced", "event", "done", "arrival", "remaining", "ids", "first_at")

    def __init__(self, choices: list[Choice], arrival: float):
        self.choices = choices
        self.produced = [0] * len(choices)  # tokens of each choice generated so far
        self.event = asyncio.Event()  # set whenever tokens arrive
        self.done = asyncio.get_running_loop().create_future()  # resolved when every choice finished
        self.arrival = arrival
        self.remaining = len(choices)
        self.ids: list[int] = []
        self.first_at: list[float | None] = [None] * len(choices)


class EngineLoop:
    """Runs ``BatchSimulator`` steps, sleeping each step's duration divided by the time scale."""

    def __init__(self, settings: EngineSettings, metrics: EngineMetrics):
        seqs, tokens = settings.batch_limits()
        self.sim = BatchSimulator(settings.profile(), max_num_seqs=seqs, max_num_batched_tokens=tokens)
        self.prefix_cache = PrefixCache(self.sim.total_blocks, self.sim.block_size) if settings.prefix_caching else None
        self.metrics = metrics
        self.time_scale = settings.time_scale
        self._owners: dict[int, tuple[Job, int]] = {}
        self._next_id = 0
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.dead: str | None = None  # why the loop stopped, if it did

    def submit(self, choices: list[Choice]) -> Job:
        """Queue every choice of a request as one sequence; raises ValueError if one cannot fit the KV cache."""
        if self.dead:
            raise RuntimeError(self.dead)
        job = Job(choices, self._loop.time())
        for index, choice in enumerate(choices):
            rid = self._next_id
            self._next_id += 1
            cached = self.prefix_cache.match(choice.prompt.key) if self.prefix_cache else 0
            try:
                self.sim.add(rid, choice.prompt.tokens, choice.count, choice.count, cached_tokens=cached)
            except ValueError:
                for added in job.ids:
                    self._owners.pop(added, None)
                    self.sim.abort(added)
                raise
            self.metrics.prefix_queries.inc(choice.prompt.tokens)
            self.metrics.prefix_hits.inc(min(cached, choice.prompt.tokens))
            self._owners[rid] = (job, index)
            job.ids.append(rid)
        self.metrics.waiting.set(self.sim.num_waiting)
        self._wake.set()
        return job

    def abort(self, job: Job) -> None:
        """Drop a request whose client went away."""
        for rid in job.ids:
            if self._owners.pop(rid, None) is not None and self.sim.abort(rid):
                self.metrics.success["abort"].inc()
        if not job.done.done():
            job.done.cancel()

    async def run(self) -> None:
        """Step forever; on an internal error, fail every request and stop (like vLLM's dead engine)."""
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug must not leave requests hanging
            log.exception("engine loop failed")
            self.dead = f"engine loop failed: {err!r}"
            for job, _ in list(self._owners.values()):
                if not job.done.done():
                    job.done.cancel()
                job.event.set()
            self._owners.clear()

    async def _run(self) -> None:
        loop = self._loop
        deadline = loop.time()
        while True:
            if self.sim.idle:
                self.metrics.set_batch(0, 0, 0.0)
                self._wake.clear()
                await self._wake.wait()
                deadline = loop.time()
            started = loop.time()
            result = self.sim.step()
            if result is None:
                continue
            deadline += result.duration_ms / 1000.0 / self.time_scale
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                if delay < -MAX_LAG_S:
                    deadline = loop.time()
                await asyncio.sleep(0)
            self._deliver(result, started, loop.time())

    def _deliver(self, result, started: float, now: float) -> None:
        m = self.metrics
        owners = self._owners
        for rid in result.admitted:
            owner = owners.get(rid)
            if owner:
                m.queue_time.observe(max(0.0, started - owner[0].arrival))
        for rid in result.first_tokens:
            owner = owners.get(rid)
            if owner:
                job, index = owner
                job.first_at[index] = now
                m.ttft.observe(now - job.arrival)
                m.prompt_tokens.inc(job.choices[index].prompt.tokens)
        for rid in result.tokens:
            owner = owners.get(rid)
            if owner:
                job, index = owner
                job.produced[index] += 1
                job.event.set()
        m.generation_tokens.inc(len(result.tokens))
        if result.preempted:
            m.preemptions.inc(len(result.preempted))
        for rid, _, count in result.finished:
            owner = owners.pop(rid, None)
            if owner:
                self._finish(owner[0], owner[1], count, now)
        m.set_batch(result.running, result.waiting, result.kv_usage)

    def _finish(self, job: Job, index: int, count: int, now: float) -> None:
        m = self.metrics
        m.success[job.choices[index].finish_reason].inc()
        first = job.first_at[index]
        if first is not None and count > 1:
            m.itl.observe((now - first) / (count - 1))
        job.remaining -= 1
        if job.remaining == 0:
            m.e2e.observe(now - job.arrival)
            if not job.done.done():
                job.done.set_result(None)
