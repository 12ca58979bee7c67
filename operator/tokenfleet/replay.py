"""Replay a request trace through a scaler and the engine model: cost per token, TTFT and replica history.

A library for ``bench/autoscale.py`` and ``tokenfleet plan``::

    from tokenfleet.replay import FleetModel, load_trace, replay
    from tokenfleet.scalers import PolicyScaler
    requests = load_trace("trace.csv")              # TIMESTAMP, ContextTokens, GeneratedTokens
    model = FleetModel.for_tier(spec)                # the tier's EngineProfile, start-up delay, SLO
    result = replay(requests, model, PolicyScaler(ScalingPolicy.from_spec(spec)))
    result.cost_per_million_tokens, result.slo_attainment, result.reversals(300)

Each replica is the engine emulator's continuous-batching simulator
(``tokenfleet.engine.simulator.BatchSimulator``) on the tier's ``perf.EngineProfile``: the same
model with the same parameters as ``tokenfleet emulate-engine``. The fleet around it is modelled
like Kubernetes and Prometheus: a new replica costs money from the moment it is asked for and
takes ``startup_seconds`` before it serves; requests go to the ready replica with the fewest
requests in flight (held by the router while none is ready); a removed replica stops taking
requests and is billed until its last request finishes. Every ``scrape_interval`` each ready
replica is sampled; every ``decision_interval`` the scaler sees what PromQL over the last
``window`` would return (gauge means, counter rates, TTFT p95 through ``histogram_quantile``
over vLLM's buckets).
"""

from __future__ import annotations

import bisect
import csv
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from tokenfleet.autoscaling import ReplicaSignals, TierSignals
from tokenfleet.engine.metrics import TTFT_BUCKETS
from tokenfleet.engine.simulator import BatchSimulator
from tokenfleet.perf import STARTUP_SECONDS, EngineProfile, default_batch_limits, profile_for_tier
from tokenfleet.scalers import Scaler


@dataclass(frozen=True)
class Request:
    """One request of a trace: seconds since the trace began, prompt and output tokens."""

    arrival: float
    prompt_tokens: int
    output_tokens: int


def load_trace(path: str | Path, limit: int | None = None) -> list[Request]:
    """Requests of a CSV with TIMESTAMP, ContextTokens, GeneratedTokens (Azure LLM inference trace format)."""
    rows: list[tuple[datetime, int, int]] = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            stamp = row["TIMESTAMP"].strip()
            head, _, frac = stamp.partition(".")
            when = datetime.fromisoformat(head + ("." + frac[:6] if frac else ""))
            rows.append((when, int(row["ContextTokens"]), int(row["GeneratedTokens"])))
            if limit is not None and len(rows) >= limit:
                break
    if not rows:
        raise ValueError(f"{path}: no requests (expected columns TIMESTAMP, ContextTokens, GeneratedTokens)")
    rows.sort(key=lambda r: r[0])
    t0 = rows[0][0]
    return [Request((w - t0).total_seconds(), max(1, p), max(1, g)) for w, p, g in rows]


def histogram_quantile(q: float, bounds: tuple[float, ...], counts: list[float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative ``counts`` (one per bound, then +Inf)."""
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    i = bisect.bisect_left(counts, rank)
    if i >= len(bounds):
        return bounds[-1]
    lower, below = (bounds[i - 1], counts[i - 1]) if i > 0 else (0.0, 0.0)
    inside = counts[i] - below
    return bounds[i] if inside <= 0 else lower + (bounds[i] - lower) * (rank - below) / inside


@dataclass(frozen=True)
class FleetModel:
    """How the replayed fleet behaves around the engine model."""

    profile: EngineProfile
    startup_seconds: float = STARTUP_SECONDS
    decision_interval: float = 15.0  # the operator's TOKENFLEET_AUTOSCALE_INTERVAL_SECONDS
    scrape_interval: float = 15.0
    window: float = 60.0  # PromQL range of the signals
    max_num_batched_tokens: int = 2048  # chunked-prefill budget per step (vLLM's default below 70 GiB GPUs)
    ttft_slo_seconds: float = 2.0
    initial_replicas: int = 1

    @classmethod
    def for_tier(cls, spec, **overrides) -> "FleetModel":
        """The model of a ModelTierSpec: its profile, its TTFT SLO and its batch token budget."""
        budget = spec.engine.max_num_batched_tokens or default_batch_limits(spec.gpu.type, spec.gpu.memory_gib)[1]
        values = dict(profile=profile_for_tier(spec), ttft_slo_seconds=spec.scaling.ttft_slo_seconds,
                      max_num_batched_tokens=budget)
        return cls(**{**values, **overrides})


class _Replica:
    """One engine replica inside the replay, with what Prometheus would scrape from it."""

    def __init__(self, name: str, model: FleetModel, now: float, ready_at: float):
        self.name = name
        self.sim = BatchSimulator(model.profile, max_num_batched_tokens=model.max_num_batched_tokens)
        self.billed_from = now
        self.ready_at = ready_at
        self.busy_until: float | None = None  # end of the step in flight
        self.step = None
        self.draining = False
        self.stopped: float | None = None
        self.prompt_total = 0.0
        self.generation_total = 0.0
        self.finished_total = 0.0
        self.ttft_counts = [0.0] * (len(TTFT_BUCKETS) + 1)  # cumulative, as the histogram exports them
        self.samples: list[tuple] = []  # (t, running, waiting, kv, prompt, generation, finished, ttft_counts)

    @property
    def outstanding(self) -> int:
        return self.sim.num_running + self.sim.num_waiting

    def observe_ttft(self, seconds: float) -> None:
        for i in range(bisect.bisect_left(TTFT_BUCKETS, seconds), len(self.ttft_counts)):
            self.ttft_counts[i] += 1

    def scrape(self, now: float, window: float) -> None:
        sim = self.sim
        self.samples.append((now, sim.num_running, sim.num_waiting, sim.kv_usage, self.prompt_total,
                             self.generation_total, self.finished_total, list(self.ttft_counts)))
        while self.samples and self.samples[0][0] <= now - window:
            self.samples.pop(0)

    def signals(self) -> ReplicaSignals | None:
        s = self.samples
        if not s:
            return None
        n = len(s)
        span = s[-1][0] - s[0][0]
        rate = (lambda i: (s[-1][i] - s[0][i]) / span) if span > 0 else (lambda i: 0.0)
        return ReplicaSignals(
            name=self.name,
            running=sum(x[1] for x in s) / n,
            waiting=sum(x[2] for x in s) / n,
            kv_cache_usage=sum(x[3] for x in s) / n,
            prompt_tokens_per_second=rate(4),
            generation_tokens_per_second=rate(5),
            requests_per_second=rate(6),
        )


@dataclass
class ReplayResult:
    """What one replay measured."""

    scaler: str
    requests: int
    tokens: int  # prompt + generated
    seconds: float  # first arrival to last token
    cost_usd: float
    ttft: list[float]  # seconds, per request, in arrival order
    ttft_slo_seconds: float
    scale_events: list[tuple[float, int, int]]  # (time, from, to)
    replica_seconds: float

    @property
    def cost_per_million_tokens(self) -> float:
        return self.cost_usd / self.tokens * 1e6 if self.tokens else float("nan")

    @property
    def slo_attainment(self) -> float:
        """Share of requests whose first token came within the TTFT SLO."""
        return sum(1 for t in self.ttft if t <= self.ttft_slo_seconds) / len(self.ttft) if self.ttft else 1.0

    @property
    def mean_replicas(self) -> float:
        return self.replica_seconds / self.seconds if self.seconds else 0.0

    def reversals(self, window: float) -> int:
        """Scale events whose direction differs from the previous event's, less than ``window`` after it."""
        count = 0
        for (t0, a0, b0), (t1, a1, b1) in zip(self.scale_events, self.scale_events[1:]):
            if (b0 > a0) != (b1 > a1) and t1 - t0 < window:
                count += 1
        return count


def batch_caps(max_num_seqs: int) -> list[int]:
    """The batch sizes the saturation search tries: 8, 12, 16, 24, 32, 48 ... up to ``max_num_seqs``."""
    caps, n = [], 8
    while n < max_num_seqs:
        caps += [n, n * 3 // 2]
        n *= 2
    return sorted({c for c in caps if c < max_num_seqs} | {max_num_seqs})


def packed_tokens_per_second(requests: list[Request], model: FleetModel, max_num_seqs: int | None = None) -> float:
    """Tokens/s (prompt + generated) of one replica with ``requests`` all queued at once (0: no wait)."""
    return _packed(requests, model, max_num_seqs)[0]


def _packed(requests: list[Request], model: FleetModel, max_num_seqs: int | None) -> tuple[float, int]:
    """Throughput and preemptions of one engine simulator (``BatchSimulator``, the replay's own model
    with its token budget) that keeps its batch as full as ``max_num_seqs`` and the KV cache allow
    and never waits for work; throughput is counted while requests still wait, before the batch drains."""
    sim = BatchSimulator(model.profile, max_num_seqs=max_num_seqs, max_num_batched_tokens=model.max_num_batched_tokens)
    for i, r in enumerate(requests):
        sim.add(i, r.prompt_tokens, r.output_tokens, r.output_tokens)
    ms = tokens = 0.0
    while sim.num_waiting > 0:
        result = sim.step()
        ms += result.duration_ms
        tokens += len(result.tokens) + sum(requests[i].prompt_tokens for i in result.first_tokens)
    return (tokens / (ms / 1000.0) if ms > 0 else 0.0), sim.preemptions


def saturation_tokens_per_second(requests: list[Request], model: FleetModel, sample: int = 4000) -> float:
    """Tokens/s (prompt + generated) of one replica perfectly packed with the trace's own requests.

    Up to ``sample`` requests, spread evenly over the trace, are queued at once
    (``packed_tokens_per_second``) with the batch capped at ``max_num_seqs``. A KV cache too small
    for the batch vLLM admits thrashes (it preempts and recomputes), and a floor must not charge that
    waste: while a run preempts, the next smaller of ``batch_caps`` is tried, and the best
    throughput is the saturation throughput. (Without preemption a smaller batch is never faster:
    a step's fixed cost is shared by fewer sequences.) Unlike the closed form at the mean request
    shape (``EngineProfile.saturation_output_tps``), this sees the spread of prompt and output
    lengths, chunked prefill and preemptions.
    """
    if not requests:
        raise ValueError("no requests")
    picked = requests[::max(1, len(requests) // sample)]
    caps = batch_caps(model.profile.max_num_seqs)
    best, preemptions = _packed(picked, model, caps.pop())
    if best <= 0:  # everything fits in one batch: the closed form is all there is
        mean_in = sum(r.prompt_tokens for r in requests) / len(requests)
        mean_out = sum(r.output_tokens for r in requests) / len(requests)
        return model.profile.saturation_output_tps(mean_in, mean_out) * (mean_in + mean_out) / mean_out
    while preemptions and caps:
        tps, preemptions = _packed(picked, model, caps.pop())
        best = max(best, tps)
    return best


def floor_cost_per_million_tokens(requests: list[Request], model: FleetModel) -> float:
    """USD per 1M tokens of perfectly packed replicas at saturation throughput for the trace's requests."""
    return model.profile.hourly_usd / (saturation_tokens_per_second(requests, model) * 3600.0) * 1e6


class _Fleet:
    """The replicas of one tier, the router in front of them, and the bill."""

    def __init__(self, requests: list[Request], model: FleetModel):
        self.requests = requests
        self.model = model
        self.replicas: list[_Replica] = []
        self.retired: list[_Replica] = []
        self.held: list[int] = []  # request indexes waiting for a ready replica
        self.first_token = [math.nan] * len(requests)
        self.tokens = 0
        self.done = 0
        self.created = 0
        self.events: list[tuple[float, int, int]] = []

    @property
    def current(self) -> int:
        return len(self.replicas)

    def add_replicas(self, count: int, now: float, ready_at: float) -> None:
        for _ in range(count):
            self.created += 1
            self.replicas.append(_Replica(f"replica-{self.created}", self.model, now, ready_at))

    def scale(self, now: float, to: int) -> None:
        if to == self.current:
            return
        self.events.append((now, self.current, to))
        if to > self.current:
            self.add_replicas(to - self.current, now, now + self.model.startup_seconds)
            return
        # Kubernetes removes pods that are not ready first; among ready ones, the least busy.
        order = sorted(self.replicas, key=lambda r: (r.ready_at <= now, r.outstanding, -r.ready_at))
        for victim in order[: self.current - to]:
            self.replicas.remove(victim)
            victim.draining = True
            if victim.step is None:
                victim.stopped = now
            self.retired.append(victim)

    def dispatch(self, index: int, now: float) -> None:
        ready = [r for r in self.replicas if r.ready_at <= now]
        if not ready:
            self.held.append(index)
            return
        replica = min(ready, key=lambda r: r.outstanding)
        req = self.requests[index]
        replica.sim.add(index, req.prompt_tokens, req.output_tokens, req.output_tokens)
        if replica.step is None:
            self._start_step(replica, now)

    def release_held(self, now: float) -> None:
        held, self.held = self.held, []
        for index in held:
            self.dispatch(index, now)

    def _start_step(self, replica: _Replica, now: float) -> None:
        step = replica.sim.step()
        if step is None:
            replica.step, replica.busy_until = None, None
            if replica.draining:
                replica.stopped = now
            return
        replica.step, replica.busy_until = step, now + step.duration_ms / 1000.0

    def finish_step(self, replica: _Replica) -> None:
        now, step = replica.busy_until, replica.step
        replica.generation_total += len(step.tokens)
        for index in step.first_tokens:  # like vLLM: prompt tokens and TTFT count at the first token
            if math.isnan(self.first_token[index]):
                self.first_token[index] = now
                replica.prompt_total += self.requests[index].prompt_tokens
                replica.observe_ttft(now - self.requests[index].arrival)
        for index, _, count in step.finished:
            self.tokens += self.requests[index].prompt_tokens + count
            self.done += 1
        replica.finished_total += len(step.finished)
        self._start_step(replica, now)

    def next_step(self) -> _Replica | None:
        busy = [r for r in self.replicas + self.retired if r.step is not None]
        return min(busy, key=lambda r: r.busy_until) if busy else None

    def signals(self, now: float) -> TierSignals:
        ready = [r for r in self.replicas if r.ready_at <= now]
        reported = [s for s in (r.signals() for r in ready) if s is not None]
        counts = [0.0] * (len(TTFT_BUCKETS) + 1)
        for r in ready:
            if len(r.samples) >= 2:
                first, last = r.samples[0][7], r.samples[-1][7]
                counts = [c + b - a for c, a, b in zip(counts, first, last)]
        ttft = histogram_quantile(0.95, TTFT_BUCKETS, counts)
        return TierSignals(tuple(reported), ttft, float(len(self.held)))

    def bill(self, end: float) -> tuple[float, float]:
        seconds = sum((r.stopped if r.stopped is not None else end) - r.billed_from
                      for r in self.replicas + self.retired)
        return seconds * self.model.profile.hourly_usd / 3600.0, seconds


def replay(requests: list[Request], model: FleetModel, scaler: Scaler) -> ReplayResult:
    """Run the whole trace; the fleet starts with ``model.initial_replicas`` ready replicas."""
    fleet = _Fleet(requests, model)
    fleet.add_replicas(model.initial_replicas, 0.0, 0.0)
    i, n = 0, len(requests)
    next_scrape, next_decision = 0.0, model.decision_interval
    now = 0.0
    while fleet.done < n:
        busy = fleet.next_step()
        t_step = busy.busy_until if busy is not None else math.inf
        t_arrival = requests[i].arrival if i < n else math.inf
        t_ready = min((r.ready_at for r in fleet.replicas if r.ready_at > now), default=math.inf)
        t_tick = min(next_scrape, next_decision) if i < n or fleet.held or busy is not None else math.inf
        now = min(t_step, t_arrival, t_ready, t_tick)
        if now == math.inf:
            raise RuntimeError("replay stalled: requests left but no replica will ever serve them")
        if now == t_step:
            fleet.finish_step(busy)
        elif now == t_arrival:
            fleet.dispatch(i, now)
            i += 1
        elif now == t_ready:
            fleet.release_held(now)
        else:
            if now == next_scrape:
                for r in fleet.replicas:
                    if r.ready_at <= now:
                        r.scrape(now, model.window)
                next_scrape += model.scrape_interval
            if now == next_decision:
                fleet.scale(now, scaler.decide(now, fleet.current, fleet.signals(now)))
                next_decision += model.decision_interval
                fleet.release_held(now)
    cost, replica_seconds = fleet.bill(now)
    ttft = [f - r.arrival for f, r in zip(fleet.first_token, requests)]
    return ReplayResult(scaler.name, n, fleet.tokens, now, cost, ttft, model.ttft_slo_seconds,
                        fleet.events, replica_seconds)
