"""A clock-free simulator of vLLM's continuous batching: one scheduler step at a time.

``BatchSimulator`` keeps vLLM V1's scheduler state for one replica: a running batch bounded by
``max_num_seqs`` and by the KV cache (paged in blocks of ``block_size`` tokens), and a FIFO
waiting queue. Each ``step()``:

1. gives every running sequence its tokens for this step within the token budget
   ``max_num_batched_tokens``: one decode token, or the next chunk of its prompt (chunked prefill);
2. admits waiting requests, oldest first, while the batch has a free slot, the token budget is
   not spent and the KV cache has blocks for the chunk they would prefill;
3. when a running sequence needs a KV block and none is free, preempts the newest running
   sequence (vLLM's recompute preemption: its KV is freed, it goes back to the head of the queue
   and later prefills its prompt and the tokens it already generated again);
4. prices the step with ``EngineProfile.step_ms`` and reports what it produced.

A sequence emits its first token in the step that finishes its prefill, then one per step. It
finishes after ``min(target_tokens, max_tokens)`` tokens: ``stop`` when the answer was complete,
``length`` when max_tokens cut it. No clock, no asyncio: callers add durations up themselves
(the HTTP emulator sleeps them, the autoscaler benchmark replays traces with them).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Hashable

from tokenfleet.perf import EngineProfile

DEFAULT_BLOCK_SIZE = 16  # vLLM's default KV block size on CUDA
WATERMARK = 0.01  # share of KV blocks vLLM keeps free when admitting new requests


@dataclass
class Sequence:
    """One request's state inside the simulator."""

    request_id: Hashable
    prompt_tokens: int
    max_tokens: int
    target_tokens: int
    generated: int = 0  # tokens emitted to the client so far
    computed: int = 0  # tokens whose KV is in the cache (prompt and generated)
    blocks: int = 0  # KV blocks held
    preemptions: int = 0
    cached: int = 0  # leading prompt tokens served by the prefix cache (no prefill compute)

    @property
    def output_tokens(self) -> int:
        """Tokens this sequence will emit in all."""
        return min(self.target_tokens, self.max_tokens)

    @property
    def finish_reason(self) -> str:
        """``length`` when max_tokens cuts the answer short, else ``stop``."""
        return "length" if self.target_tokens > self.max_tokens else "stop"

    @property
    def to_compute(self) -> int:
        """Tokens that must be in the KV cache before the next token can be sampled."""
        return self.prompt_tokens + self.generated


@dataclass
class StepResult:
    """What one scheduler step did."""

    duration_ms: float
    tokens: dict = field(default_factory=dict)  # request_id -> tokens emitted this step (0 or 1)
    first_tokens: list = field(default_factory=list)  # request_ids whose first token came this step
    finished: list = field(default_factory=list)  # (request_id, finish_reason, output_tokens)
    preempted: list = field(default_factory=list)  # request_ids sent back to the queue
    admitted: list = field(default_factory=list)  # request_ids that left the queue for the first time
    scheduled: int = 0  # sequences that took part in the step
    prefill_tokens: int = 0
    decode_tokens: int = 0
    running: int = 0  # after the step
    waiting: int = 0
    kv_usage: float = 0.0  # 0-1 after the step


class BatchSimulator:
    """vLLM's continuous-batching scheduler for one replica, stepped by the caller."""

    def __init__(self, profile: EngineProfile, *, max_num_seqs: int | None = None,
                 max_num_batched_tokens: int = 2048, kv_capacity_tokens: float | None = None,
                 block_size: int = DEFAULT_BLOCK_SIZE):
        self.profile = profile
        self.max_num_seqs = max_num_seqs or profile.max_num_seqs
        self.max_num_batched_tokens = max(1, max_num_batched_tokens)
        self.block_size = block_size
        capacity = profile.kv_capacity_tokens if kv_capacity_tokens is None else kv_capacity_tokens
        self.total_blocks = max(1, int(capacity // block_size))
        self.free_blocks = self.total_blocks
        self.running: OrderedDict[Hashable, Sequence] = OrderedDict()  # admission order
        self.waiting: deque[Sequence] = deque()
        self.steps = 0
        self.preemptions = 0

    # ------------------------------------------------------------------ requests
    def add(self, request_id: Hashable, prompt_tokens: int, max_tokens: int, target_tokens: int | None = None,
            cached_tokens: int = 0) -> None:
        """Queue a request; it joins the batch at a later ``step()``.

        ``cached_tokens``: leading prompt tokens found in the prefix cache; they take KV blocks but
        no prefill compute (vLLM's automatic prefix caching).
        """
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        target = max_tokens if target_tokens is None else max(1, target_tokens)
        seq = Sequence(request_id, max(1, prompt_tokens), max_tokens, target)
        seq.cached = max(0, min(cached_tokens, seq.prompt_tokens - 1))
        if self._blocks_for(seq.prompt_tokens + seq.output_tokens) > self.total_blocks:
            raise ValueError(
                f"request needs {seq.prompt_tokens + seq.output_tokens} tokens of KV cache, "
                f"more than the {self.max_kv_tokens()} the cache holds"
            )
        self.waiting.append(seq)

    def abort(self, request_id: Hashable) -> bool:
        """Drop a request (client went away); True if it was known."""
        seq = self.running.pop(request_id, None)
        if seq is not None:
            self._release(seq)
            return True
        for seq in self.waiting:
            if seq.request_id == request_id:
                self.waiting.remove(seq)
                return True
        return False

    @property
    def idle(self) -> bool:
        """No request running or waiting."""
        return not self.running and not self.waiting

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def kv_usage(self) -> float:
        """Share of KV blocks in use, 0-1 (vLLM's kv_cache_usage_perc)."""
        return 1.0 - self.free_blocks / self.total_blocks

    def max_kv_tokens(self) -> int:
        """The KV cache's capacity in tokens."""
        return self.total_blocks * self.block_size

    # ------------------------------------------------------------------ KV blocks
    def _blocks_for(self, tokens: int) -> int:
        return math.ceil(tokens / self.block_size)

    def _grow(self, seq: Sequence, new_tokens: int) -> bool:
        need = self._blocks_for(seq.computed + new_tokens) - seq.blocks
        if need <= 0:
            return True
        if need > self.free_blocks:
            return False
        self.free_blocks -= need
        seq.blocks += need
        return True

    def _release(self, seq: Sequence) -> None:
        self.free_blocks += seq.blocks
        seq.blocks = 0
        seq.computed = 0

    def _preempt_newest(self, result: StepResult) -> Sequence:
        """Free the newest running sequence and put it back at the head of the queue."""
        rid, victim = self.running.popitem(last=True)
        self._release(victim)
        victim.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(victim)
        result.preempted.append(rid)
        return victim

    # ------------------------------------------------------------------ stepping
    def _schedule_running(self, result: StepResult, plan: dict) -> int:
        budget = self.max_num_batched_tokens
        for rid in list(self.running):
            seq = self.running.get(rid)
            if seq is None or budget <= 0:
                continue  # preempted earlier in this loop, or no budget left
            want = min(seq.to_compute - seq.computed, budget)
            while not self._grow(seq, want):
                if self._preempt_newest(result) is seq:
                    break  # it was the newest itself: it waits for the others to finish
            if rid in self.running:
                plan[rid] = want
                budget -= want
        return budget

    def _admit_waiting(self, result: StepResult, plan: dict, budget: int) -> None:
        watermark = int(self.total_blocks * WATERMARK)
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            skip = seq.cached if seq.computed == 0 else 0
            want = min(seq.to_compute - skip, budget)
            need = self._blocks_for(skip + want)
            if self.free_blocks - need < watermark and self.running:
                break
            if not self._grow(seq, skip + want):
                break
            seq.computed += skip
            self.waiting.popleft()
            self.running[seq.request_id] = seq
            if not seq.preemptions:
                result.admitted.append(seq.request_id)
            plan[seq.request_id] = want
            budget -= want

    def step(self) -> StepResult | None:
        """Run one scheduler step; None when there is nothing to do."""
        if self.idle:
            return None
        result = StepResult(duration_ms=0.0)
        plan: dict[Hashable, int] = {}
        budget = self._schedule_running(result, plan)
        self._admit_waiting(result, plan, budget)
        context = 0
        for rid, count in plan.items():
            seq = self.running[rid]
            decoding = seq.generated > 0 and seq.to_compute - seq.computed == 1
            context += seq.computed + count
            seq.computed += count
            if decoding:
                result.decode_tokens += 1
            else:
                result.prefill_tokens += count
            if seq.computed >= seq.to_compute:
                self._emit(seq, result)
        result.scheduled = len(plan)
        result.duration_ms = self.profile.step_ms(len(plan), context, result.prefill_tokens)
        self.steps += 1
        result.running, result.waiting, result.kv_usage = len(self.running), len(self.waiting), self.kv_usage
        return result

    def _emit(self, seq: Sequence, result: StepResult) -> None:
        """The step sampled a token for ``seq`` (the first after a prefill, or a decode token)."""
        if seq.generated == 0:
            result.first_tokens.append(seq.request_id)
        seq.generated += 1
        result.tokens[seq.request_id] = 1
        if seq.generated >= seq.output_tokens:
            del self.running[seq.request_id]
            self._release(seq)
            result.finished.append((seq.request_id, seq.finish_reason, seq.generated))


@dataclass(frozen=True)
class LoadResult:
    """Figures of a closed-loop run (what a benchmark client at fixed concurrency measures)."""

    requests: int
    seconds: float
    output_tps: float
    mean_ttft_ms: float
    mean_itl_ms: float  # time between tokens after the first, averaged over requests


def run_closed_loop(sim: BatchSimulator, *, concurrency: int, prompt_tokens: int, output_tokens: int,
                    requests: int) -> LoadResult:
    """Keep ``concurrency`` requests in flight until ``requests`` have finished, like vllm bench serve."""
    now = 0.0
    started: dict[int, float] = {}
    first: dict[int, float] = {}
    next_id = 0
    done = 0
    ttft_sum = itl_sum = 0.0
    tokens = 0
    while done < requests:
        while next_id - done < concurrency and next_id < requests:
            sim.add(next_id, prompt_tokens, output_tokens, output_tokens)
            started[next_id] = now
            next_id += 1
        result = sim.step()
        now += result.duration_ms
        for rid in result.first_tokens:
            first[rid] = now
        for rid, _, count in result.finished:
            done += 1
            tokens += count
            ttft_sum += first[rid] - started[rid]
            itl_sum += (now - first[rid]) / max(count - 1, 1)
    return LoadResult(requests, now / 1000.0, tokens / (now / 1000.0), ttft_sum / done, itl_sum / done)
