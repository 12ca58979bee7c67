"""Pure: the Ready, Progressing and Degraded conditions of a custom resource from what was observed.

Semantics (docs/operator.md): Ready is True when the workload can serve (at least one ready
replica) or is deliberately at zero replicas; Progressing is True while a rollout or a scale
change is under way; Degraded is True when something needs a human (a problem with the spec,
a missing dependency, a stalled rollout, or tiers that are not ready). A problem (bad spec,
missing dependency) always wins: Ready=False with the problem's reason and message.
"""

from __future__ import annotations

from dataclasses import dataclass

READY, PROGRESSING, DEGRADED = "Ready", "Progressing", "Degraded"
OURS = (READY, PROGRESSING, DEGRADED)

# Reasons of problems: Ready=False, Degraded=True, and a Warning Event when they first appear.
INVALID_SPEC = "InvalidSpec"
INSUFFICIENT_GPU_MEMORY = "InsufficientGPUMemory"
TIER_NOT_FOUND = "TierNotFound"
TIER_INVALID = "TierInvalid"
CACHE_POLICY_NOT_FOUND = "CachePolicyNotFound"
APPLY_FAILED = "ApplyFailed"


@dataclass(frozen=True)
class Problem:
    """Why a resource cannot be reconciled as asked; ``reason`` is one CamelCase word."""

    reason: str
    message: str


@dataclass(frozen=True)
class Condition:
    """A condition before it is stamped with times and generations."""

    type: str
    status: str  # True, False, Unknown
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Workload:
    """What a child Deployment reports about itself."""

    desired: int
    replicas: int = 0
    ready: int = 0
    updated: int = 0
    current: bool = True  # the Deployment controller has seen its latest spec
    stalled: str | None = None  # the Deployment's message when its progress deadline passed

    @classmethod
    def from_deployment(cls, dep: dict) -> "Workload":
        spec, status = dep.get("spec") or {}, dep.get("status") or {}
        generation = (dep.get("metadata") or {}).get("generation")
        observed = status.get("observedGeneration")
        stalled = next(
            (c.get("message") or "progress deadline exceeded" for c in status.get("conditions") or []
             if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"),
            None,
        )
        return cls(
            desired=int(spec.get("replicas", 1)),
            replicas=int(status.get("replicas") or 0),
            ready=int(status.get("readyReplicas") or 0),
            updated=int(status.get("updatedReplicas") or 0),
            current=generation is None or (observed is not None and observed >= generation),
            stalled=stalled,
        )

    @property
    def rolling(self) -> bool:
        return (not self.current or self.updated < self.desired or self.ready < self.desired
                or self.replicas > self.desired)


def problem_conditions(problem: Problem) -> list[Condition]:
    return [
        Condition(READY, "False", problem.reason, problem.message),
        Condition(PROGRESSING, "False", problem.reason, "waiting for the problem to be fixed"),
        Condition(DEGRADED, "True", problem.reason, problem.message),
    ]


def workload_conditions(workload: Workload | None, problem: Problem | None = None) -> list[Condition]:
    """Conditions of a resource that runs one Deployment."""
    if problem is not None:
        return problem_conditions(problem)
    if workload is None:
        return [
            Condition(READY, "False", "Creating", "waiting for the Deployment"),
            Condition(PROGRESSING, "True", "Creating", "creating the Deployment"),
            Condition(DEGRADED, "False", "AsExpected"),
        ]
    w = workload
    counts = f"{w.ready}/{w.desired} replicas ready, {w.updated} up to date"
    if w.desired == 0:
        ready = Condition(READY, "True", "ScaledToZero", "no replicas wanted; requests start one when allowed")
    elif w.ready >= 1:
        ready = Condition(READY, "True", "ReplicasReady", counts)
    else:
        ready = Condition(READY, "False", "ReplicasNotReady", counts)
    progressing = (Condition(PROGRESSING, "True", "RollingOut", counts) if w.rolling
                   else Condition(PROGRESSING, "False", "RolloutComplete", counts))
    degraded = (Condition(DEGRADED, "True", "ProgressDeadlineExceeded", w.stalled) if w.stalled
                else Condition(DEGRADED, "False", "AsExpected"))
    return [ready, progressing, degraded]


def fleet_conditions(router: Workload | None, problem: Problem | None, failing_tiers: list[str],
                     starting_tiers: list[str] | None = None) -> list[Condition]:
    """Conditions of a fleet: its router's, plus Degraded while some of its tiers are not Ready and
    Degraded themselves, and Progressing while some are still starting (not Ready, not Degraded)."""
    conditions = workload_conditions(router, problem)
    if problem is not None:
        return conditions
    replaced: dict[str, Condition] = {}
    if failing_tiers:
        message = f"tiers not ready: {', '.join(failing_tiers)} (the router escalates past them)"
        replaced[DEGRADED] = Condition(DEGRADED, "True", "TiersNotReady", message)
    router_rolling = any(c.type == PROGRESSING and c.status == "True" for c in conditions)
    if starting_tiers and not router_rolling:
        message = f"tiers starting: {', '.join(starting_tiers)} (the router escalates past them meanwhile)"
        replaced[PROGRESSING] = Condition(PROGRESSING, "True", "TiersStarting", message)
    return [replaced.get(c.type, c) for c in conditions]


def merge_conditions(existing: list[dict] | None, desired: list[Condition], generation: int | None,
                     now: str) -> list[dict]:
    """The full conditions list: ours in a fixed order, then other actors' untouched.

    ``lastTransitionTime`` changes only when a condition's status changes (as
    ``meta.SetStatusCondition`` does), so an unchanged state produces an identical list.
    """
    existing = [c for c in existing or [] if isinstance(c, dict)]
    previous = {c.get("type"): c for c in existing}
    ours = []
    for cond in desired:
        old = previous.get(cond.type) or {}
        same = old.get("status") == cond.status and old.get("lastTransitionTime")
        item = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": old["lastTransitionTime"] if same else now,
        }
        if generation is not None:
            item["observedGeneration"] = generation
        ours.append(item)
    kept = [c for c in existing if c.get("type") not in OURS]
    return ours + kept


def status_patch(current: dict | None, desired: dict) -> dict | None:
    """The keys of ``desired`` whose values differ from ``current`` (None removes a key); None if none do."""
    current = current or {}
    patch = {}
    for key, value in desired.items():
        if value is None:
            if key in current and current[key] is not None:
                patch[key] = None
        elif current.get(key) != value:
            patch[key] = value
    return patch or None


def get_condition(conditions: list[dict] | None, type_: str) -> dict | None:
    return next((c for c in conditions or [] if isinstance(c, dict) and c.get("type") == type_), None)


def new_problem(old_conditions: list[dict] | None, problem: Problem | None) -> bool:
    """Whether ``problem`` is not yet what the Ready condition says (so it deserves an Event)."""
    if problem is None:
        return False
    ready = get_condition(old_conditions, READY) or {}
    return (ready.get("status"), ready.get("reason"), ready.get("message")) != ("False", problem.reason,
                                                                              problem.message)
