"""kopf wiring of the autoscaler: a daemon per ModelTier reads Prometheus, asks the policy, sets the replicas.

Every ``TOKENFLEET_AUTOSCALE_INTERVAL_SECONDS`` each ModelTier's daemon (in a worker thread, under
the tier's lock) reads its engine signals (``tokenfleet.metrics``), calls
``autoscaling.desired_replicas`` and, when the answer differs, sets the engine Deployment's
``spec.replicas``, posts an Event and records ``status.lastScale``. It never fights: a tier that
pins ``spec.replicas`` is left alone, and an HPA (autoscaling/v2) or a KEDA ScaledObject that
targets the same Deployment sets ``ScalingConflict=True`` and the autoscaler yields. Without a
Prometheus URL nothing is registered and replicas stay where they are. Status is patched only
when a shown value changes. Operator metrics: docs/metrics.md.

No finalizer: kopf puts one on every object that has a timer or daemon, so that it can stop them
before the object goes; but a finalizer outlives an operator uninstalled first (Argo CD and Flux
prune everything at once), and every ModelTier then hangs in deletion. The daemon needs no such
care: it ends by itself at its first decision after its tier is gone (``without_finalizer``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass

import kopf
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from tokenfleet import API_VERSION, GROUP, VERSION
from tokenfleet.api.common import now_rfc3339
from tokenfleet.api.v1alpha1 import KINDS, ModelTierSpec, parse_spec
from tokenfleet.autoscaling import METRICS_UNAVAILABLE, Decision, ScalerState, ScalingPolicy, desired_replicas
from tokenfleet.conditions import get_condition, status_patch
from tokenfleet.config import OperatorConfig
from tokenfleet.handlers.common import gone
from tokenfleet.kube import Kube
from tokenfleet.metrics import EngineMetrics, MetricsSettings, TierRef
from tokenfleet.render import child_name

log = logging.getLogger(__name__)

KIND = "ModelTier"
PLURAL = KINDS[KIND].plural
SCALING_CONFLICT = "ScalingConflict"
HPA = ("autoscaling/v2", "HorizontalPodAutoscaler")
SCALED_OBJECTS = ("keda.sh/v1alpha1", "scaledobjects")


def conflicting_scaler(hpas: list[dict], scaled_objects: list[dict], deployment: str) -> str | None:
    """Pure: 'HorizontalPodAutoscaler NAME' or 'ScaledObject NAME' that targets ``deployment``, if any."""
    for kind, objs in (("HorizontalPodAutoscaler", hpas), ("ScaledObject", scaled_objects)):
        for obj in objs:
            ref = (obj.get("spec") or {}).get("scaleTargetRef") or {}
            if ref.get("name") == deployment and ref.get("kind", "Deployment") == "Deployment":
                return f"{kind} {obj['metadata']['name']}"
    return None


def conflict_condition(existing: list[dict] | None, conflict: str | None, deployment: str,
                       now: str) -> list[dict] | None:
    """Pure: the conditions list with ScalingConflict set, or None when it needs no change.

    Absent stays absent while there is no conflict; a resolved conflict turns False.
    """
    existing = [c for c in existing or [] if isinstance(c, dict)]
    old = get_condition(existing, SCALING_CONFLICT)
    if conflict is None and old is None:
        return None
    status = "True" if conflict else "False"
    reason = conflict.split()[0] if conflict else "NoConflict"
    message = (f"{conflict} also scales Deployment {deployment}: the autoscaler yields to it" if conflict
               else f"no other autoscaler targets Deployment {deployment}")
    if old and (old.get("status"), old.get("reason"), old.get("message")) == (status, reason, message):
        return None
    changed = not old or old.get("status") != status
    item = {"type": SCALING_CONFLICT, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": now if changed else old.get("lastTransitionTime", now)}
    return [c for c in existing if c.get("type") != SCALING_CONFLICT] + [item]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


def status_fields(decision: Decision) -> dict:
    """The status fields the autoscaler owns, rounded so that noise does not cause writes."""
    return {
        "desiredReplicas": decision.replicas,
        "costPerMillionTokens": _round(decision.cost_per_million_tokens, 4),
        "tokensPerSecond": _round(decision.tokens_per_second, 4),
        "queueDepth": _round(decision.queue_depth, 3),
        "kvCacheUsage": _round(decision.kv_cache_usage, 3),
    }


@dataclass
class OperatorMetrics:
    """The autoscaler's series on the operator's /metrics (docs/metrics.md)."""

    desired: Gauge
    replicas: Gauge
    hourly_cost: Gauge
    tokens: Gauge
    cost: Gauge
    decisions: Counter

    @classmethod
    def on(cls, registry: CollectorRegistry) -> "OperatorMetrics":
        labels = ["namespace", "tier"]
        p = "tokenfleet_operator_"
        return cls(
            Gauge(p + "desired_replicas", "Replicas the autoscaler asks for.", labels, registry=registry),
            Gauge(p + "replicas", "Ready replicas of the engine Deployment.", labels, registry=registry),
            Gauge(p + "hourly_cost_usd", "Replicas x GPUs x GPU price per hour.", labels, registry=registry),
            Gauge(p + "tokens_per_second", "Prompt plus generated tokens per second.", labels, registry=registry),
            Gauge(p + "cost_per_million_tokens", "Hourly cost / (tokens/s x 3600) x 1e6.", labels, registry=registry),
            Counter(p + "scaling_decisions", "Autoscaler decisions by reason (Hold included).",
                    labels + ["reason"], registry=registry),
        )

    def forget(self, namespace: str, tier: str) -> None:
        for gauge in (self.desired, self.replicas, self.hourly_cost, self.tokens, self.cost):
            try:
                gauge.remove(namespace, tier)
            except KeyError:
                pass


class TierGone(Exception):
    """The ModelTier was deleted (or is being deleted): its daemon ends."""


def without_finalizer(registry: kopf.OperatorRegistry, handler_id: str) -> bool:
    """Let the daemon ``handler_id`` run without kopf's finalizer on its objects; False if it could not.

    kopf's decorators mark every daemon and timer as needing one (``requires_finalizer=True``,
    no option: nolar/kopf#1074); its handler objects are frozen dataclasses, so the registered
    one is replaced by a copy that does not. Should a kopf release change those internals, the
    operator keeps kopf's default (the finalizer) and says so, rather than fail to start.
    """
    try:
        handlers = registry._spawning._handlers  # noqa: SLF001 - no public way, see above
        found = [i for i, h in enumerate(handlers) if h.id == handler_id]
        if len(found) != 1:
            raise LookupError(f"{len(found)} spawning handlers named {handler_id!r}")
        handlers[found[0]] = dataclasses.replace(handlers[found[0]], requires_finalizer=False)
    except (AttributeError, LookupError, TypeError) as err:
        log.warning("kopf %s: cannot register %r without a finalizer (%s): kopf will put one on each "
                    "ModelTier; delete ModelTiers before uninstalling the operator", kopf.__version__, handler_id, err)
        return False
    return True


class Autoscaler:
    """Per-tier policy state and the decision loop body, shared by every tier's daemon."""

    def __init__(self, kube: Kube, metrics: EngineMetrics, registry: CollectorRegistry, locks,
                 clock=time.monotonic) -> None:
        self.kube, self.metrics, self.locks, self.clock = kube, metrics, locks, clock
        self.series = OperatorMetrics.on(registry)
        self.states: dict[tuple[str, str], ScalerState] = {}
        self.holding: set[tuple[str, str]] = set()  # tiers whose last decision had no signals (logged once)

    def forget(self, namespace: str, name: str) -> None:
        self.states.pop((namespace, name), None)
        self.holding.discard((namespace, name))
        self.series.forget(namespace, name)

    def tick(self, namespace: str, name: str) -> Decision | None:
        """One decision for one tier; None when there is nothing to decide (pinned, conflict, no Deployment).

        Raises TierGone when the ModelTier no longer exists or is being deleted.
        """
        with self.locks.hold((KIND, namespace, name)):
            obj = self.kube.get(API_VERSION, KIND, namespace, name)
            if gone(obj):  # its state goes with the DELETED event (autoscaler_forget)
                raise TierGone(f"{namespace}/{name}")
            try:
                spec: ModelTierSpec = parse_spec(KIND, obj.get("spec"))
            except ValidationError:
                return None  # the ModelTier handler reports it
            if spec.replicas is not None:
                return None  # the user's pin wins
            deployment_name = child_name(KIND, name)
            deployment = self.kube.get("apps/v1", "Deployment", namespace, deployment_name)
            if deployment is None:
                return None
            conflict = conflicting_scaler(self.kube.list(*HPA, namespace),
                                          self.kube.list_custom(*SCALED_OBJECTS, namespace), deployment_name)
            self._write_conflict(obj, conflict, deployment_name)
            if conflict is not None:
                self.forget(namespace, name)
                return None
            return self._decide(obj, spec, deployment)

    def _decide(self, obj: dict, spec: ModelTierSpec, deployment: dict) -> Decision:
        md = obj["metadata"]
        namespace, name = md["namespace"], md["name"]
        current = int((deployment.get("spec") or {}).get("replicas", 1))
        policy = ScalingPolicy.from_spec(spec)
        tier = TierRef(namespace, name, spec.model.served_name or name, deployment["metadata"]["name"])
        signals = self.metrics.read(tier)
        key = (namespace, name)
        decision = desired_replicas(current, signals, policy, self.states.get(key, ScalerState()), self.clock())
        self.series.decisions.labels(namespace, name, decision.reason).inc()
        status = {}
        if decision.replicas != current:
            self._scale(obj, deployment, current, decision)  # raises if the API refuses: the state stays as it was
            status["lastScale"] = {"time": now_rfc3339(), "from": current, "to": decision.replicas,
                                   "reason": decision.reason}
        self.states[key] = decision.state
        if decision.reason == METRICS_UNAVAILABLE and key not in self.holding:
            log.warning("ModelTier %s/%s: holding %d replicas: %s", namespace, name, current, decision.message)
        (self.holding.add if decision.reason == METRICS_UNAVAILABLE else self.holding.discard)(key)
        if signals is not None:
            status.update(status_fields(decision))
        patch = status_patch(obj.get("status"), status)
        if patch:
            self.kube.patch_status(API_VERSION, KIND, namespace, name, patch)
        ready = int(((deployment.get("status") or {}).get("readyReplicas")) or 0)
        self._export(namespace, name, decision, policy, ready)
        return decision

    def _scale(self, obj: dict, deployment: dict, current: int, decision: Decision) -> None:
        md = deployment["metadata"]
        self.kube.patch("apps/v1", "Deployment", md["namespace"], md["name"], {"spec": {"replicas": decision.replicas}})
        direction = "ScaledUp" if decision.replicas > current else "ScaledDown"
        message = f"{current} -> {decision.replicas} replicas ({decision.reason}): {decision.message}"
        log.info("ModelTier %s/%s: %s", obj["metadata"]["namespace"], obj["metadata"]["name"], message)
        self.kube.create_event(obj, type="Normal", reason=direction, message=message)

    def _write_conflict(self, obj: dict, conflict: str | None, deployment: str) -> None:
        status = obj.get("status") or {}
        conditions = conflict_condition(status.get("conditions"), conflict, deployment, now_rfc3339())
        if conditions is None:
            return
        md = obj["metadata"]
        self.kube.patch_status(API_VERSION, KIND, md["namespace"], md["name"], {"conditions": conditions})
        if conflict is not None:
            self.kube.create_event(obj, type="Warning", reason=SCALING_CONFLICT,
                                   message=next(c["message"] for c in conditions if c["type"] == SCALING_CONFLICT))

    def _export(self, namespace: str, name: str, decision: Decision, policy: ScalingPolicy, ready: int) -> None:
        s = self.series
        s.desired.labels(namespace, name).set(decision.replicas)
        s.replicas.labels(namespace, name).set(ready)  # serving now; below desired while pods start or fail
        s.hourly_cost.labels(namespace, name).set(decision.replicas * policy.replica_hourly_usd)
        if decision.tokens_per_second is not None:
            s.tokens.labels(namespace, name).set(decision.tokens_per_second)
        if decision.cost_per_million_tokens is not None:
            s.cost.labels(namespace, name).set(decision.cost_per_million_tokens)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """A daemon per ModelTier, only when a Prometheus URL is configured (else replicas hold)."""
    if not config.prometheus_url:
        log.info("no Prometheus URL: the autoscaler is off and replicas stay where they are")
        return
    settings = MetricsSettings.from_env(config.prometheus_url)  # read once, at start

    @kopf.on.startup(registry=registry, id="autoscaler_start")
    def start(memo: kopf.Memo, **_) -> None:
        memo.autoscaler = Autoscaler(memo.kube, EngineMetrics(settings), memo.metrics, memo.locks)

    interval = config.autoscale_interval_seconds

    @kopf.daemon(GROUP, VERSION, PLURAL, registry=registry, id="autoscaler", cancellation_timeout=10.0)
    async def autoscale(namespace: str, name: str, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_) -> None:
        """Decide every interval until the tier is gone, the operator stops or a peer takes over."""
        await stopped.wait(interval)  # the first decision one interval in, as a timer's
        while not stopped:
            try:
                await asyncio.to_thread(memo.autoscaler.tick, namespace, name)
            except TierGone:
                return
            except Exception:  # noqa: BLE001 - one failed decision (API, Prometheus): the next may pass
                log.exception("ModelTier %s/%s: autoscaling decision failed", namespace, name)
            await stopped.wait(interval)

    without_finalizer(registry, "autoscaler")

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="autoscaler_forget")
    def forget(type: str, namespace: str, name: str, memo: kopf.Memo, **_) -> None:
        if type == "DELETED":
            memo.autoscaler.forget(namespace, name)
