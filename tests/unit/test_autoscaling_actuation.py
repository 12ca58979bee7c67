"""Pure parts of the autoscaler's actuation (tokenfleet.handlers.autoscaler): conflicts, conditions, status."""

from __future__ import annotations

import pytest

from tokenfleet.autoscaling import Decision, ScalerState
import kopf

from tokenfleet.config import OperatorConfig
from tokenfleet.handlers import autoscaler
from tokenfleet.handlers.autoscaler import conflict_condition, conflicting_scaler, status_fields


def scaler(name: str, target: str, kind: str | None = "Deployment") -> dict:
    ref = {"name": target, **({"kind": kind} if kind else {})}
    return {"metadata": {"name": name}, "spec": {"scaleTargetRef": ref}}


@pytest.mark.parametrize("hpas,scaled_objects,expected", [
    ([], [], None),
    ([scaler("cpu", "chat-engine")], [], "HorizontalPodAutoscaler cpu"),
    ([scaler("cpu", "other-engine")], [], None),
    ([scaler("sts", "chat-engine", kind="StatefulSet")], [], None),
    ([], [scaler("queue", "chat-engine", kind=None)], "ScaledObject queue"),  # KEDA's kind defaults to Deployment
    ([scaler("a", "x")], [scaler("b", "chat-engine")], "ScaledObject b"),
])
def test_a_conflicting_scaler_is_one_that_targets_the_engine_deployment(hpas, scaled_objects, expected):
    assert conflicting_scaler(hpas, scaled_objects, "chat-engine") == expected


READY = {"type": "Ready", "status": "True", "reason": "ReplicasReady", "message": "", "lastTransitionTime": "t0"}


def test_no_conflict_and_no_condition_writes_nothing():
    assert conflict_condition([READY], None, "chat-engine", "t1") is None


def test_a_conflict_adds_the_condition_and_keeps_the_others():
    conditions = conflict_condition([READY], "HorizontalPodAutoscaler cpu", "chat-engine", "t1")
    assert conditions[0] == READY
    assert conditions[1] == {"type": "ScalingConflict", "status": "True", "reason": "HorizontalPodAutoscaler",
                             "message": "HorizontalPodAutoscaler cpu also scales Deployment chat-engine: the "
                                        "autoscaler yields to it", "lastTransitionTime": "t1"}
    assert conflict_condition(conditions, "HorizontalPodAutoscaler cpu", "chat-engine", "t2") is None  # unchanged


def test_a_resolved_conflict_turns_false_with_a_new_transition_time():
    conflicted = conflict_condition([READY], "ScaledObject q", "chat-engine", "t1")
    resolved = conflict_condition(conflicted, None, "chat-engine", "t2")
    cond = resolved[-1]
    assert (cond["status"], cond["reason"], cond["lastTransitionTime"]) == ("False", "NoConflict", "t2")
    assert len(resolved) == 2


def test_status_fields_are_rounded_so_that_noise_makes_no_write():
    d = Decision(3, "Hold", "", ScalerState(), tokens_per_second=7551.123, cost_per_million_tokens=0.0881234,
                 queue_depth=1.23456, kv_cache_usage=0.123456)
    assert status_fields(d) == {"desiredReplicas": 3, "costPerMillionTokens": 0.08812, "tokensPerSecond": 7551.0,
                                "queueDepth": 1.23, "kvCacheUsage": 0.123}
    assert status_fields(Decision(0, "Hold", "", ScalerState()))["costPerMillionTokens"] is None


def spawning(registry: kopf.OperatorRegistry) -> dict[str, bool]:
    return {h.id: h.requires_finalizer for h in registry._spawning.get_all_handlers()}


def test_the_autoscaler_daemon_is_registered_without_a_finalizer():
    registry = kopf.OperatorRegistry()
    autoscaler.register(registry, OperatorConfig(prometheus_url="http://prometheus:9090"))
    assert spawning(registry) == {"autoscaler": False}  # kopf's decorator says True


def test_without_a_way_to_drop_the_finalizer_kopfs_default_stands_and_the_operator_starts(caplog):
    registry = kopf.OperatorRegistry()

    @kopf.daemon("tokenfleet.io", "v1alpha1", "modeltiers", registry=registry, id="other")
    async def other(**_):
        pass

    assert autoscaler.without_finalizer(registry, "missing") is False  # no such handler: nothing changes
    assert spawning(registry) == {"other": True} and "without a finalizer" in caplog.text
    assert autoscaler.without_finalizer(registry, "other") is True and spawning(registry) == {"other": False}
