"""Scalers a trace replay can drive (``tokenfleet.replay``): tokenfleet's policy and two baselines.

Each has a ``name`` and ``decide(now, current, signals) -> replicas``, called every decision
interval with what Prometheus would return: ``PolicyScaler`` (``autoscaling.desired_replicas``,
the operator's own policy), ``QueueThresholdScaler`` (KEDA on ``num_requests_waiting`` through
HPA v2 semantics) and ``StaticScaler`` (a fixed fleet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from tokenfleet.autoscaling import ScalerState, ScalingPolicy, TierSignals, desired_replicas


class Scaler(Protocol):
    """Anything that turns signals into a replica count, every decision interval."""

    name: str

    def decide(self, now: float, current: int, signals: TierSignals) -> int: ...


@dataclass
class PolicyScaler:
    """tokenfleet's policy: ``autoscaling.desired_replicas`` with its state carried between calls."""

    policy: ScalingPolicy
    name: str = "tokenfleet"
    state: ScalerState = field(default_factory=ScalerState)
    reasons: dict[str, int] = field(default_factory=dict)

    def decide(self, now: float, current: int, signals: TierSignals) -> int:
        decision = desired_replicas(current, signals, self.policy, self.state, now)
        self.state = decision.state
        self.reasons[decision.reason] = self.reasons.get(decision.reason, 0) + 1
        return decision.replicas


@dataclass
class QueueThresholdScaler:
    """KEDA's Prometheus scaler on ``sum(vllm:num_requests_waiting) > threshold`` through the HPA.

    HPA v2 semantics for an AverageValue target: desired = ceil(sum / threshold), no change within
    the 10% tolerance, scale-up by at most max(100%, 4 pods) per decision, scale-down to the
    highest desired count of the last ``stabilization`` seconds; bounded by [min, max].
    """

    threshold: float = 5.0
    min_replicas: int = 1
    max_replicas: int = 64
    stabilization: float = 300.0
    tolerance: float = 0.1
    name: str = "queue-threshold"
    history: list[tuple[float, int]] = field(default_factory=list)

    def decide(self, now: float, current: int, signals: TierSignals) -> int:
        waiting = sum(r.waiting for r in signals.replicas) + signals.router_waiting
        ratio = waiting / max(current, 1) / self.threshold
        desired = current if abs(ratio - 1.0) <= self.tolerance else math.ceil(waiting / self.threshold)
        desired = min(max(desired, self.min_replicas), self.max_replicas)
        seen = self.history or [(now, current)]  # as if it had run before: no scale-down in its first window
        self.history = [(t, r) for t, r in seen if now - t < self.stabilization] + [(now, desired)]
        if desired > current:
            return min(desired, max(2 * current, current + 4))
        return min(current, max(r for _, r in self.history))


@dataclass
class StaticScaler:
    """A fixed fleet."""

    replicas: int
    name: str = "static"

    def decide(self, now: float, current: int, signals: TierSignals) -> int:
        return self.replicas


@dataclass
class ForesightScaler:
    """Perfect foresight, the bound no live scaler reaches: the replicas each ``window`` of the trace
    needs (``plan.model.window_replicas``), asked for ``lead`` seconds (the start-up delay) ahead and
    released as soon as the load no longer needs them."""

    needs: list[int]
    lead: float
    window: float = 60.0
    name: str = "foresight"

    def decide(self, now: float, current: int, signals: TierSignals) -> int:
        last = len(self.needs) - 1
        first, until = min(int(now // self.window), last), min(int((now + self.lead) // self.window), last)
        return max(self.needs[first:until + 1])
