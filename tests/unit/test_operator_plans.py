"""Handlers' decisions before touching the API (children, or a problem) and how outcomes become kopf retries."""

import json
import logging

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from tokenfleet.api.v1alpha1 import InferenceFleetSpec
from tokenfleet.conditions import (
    APPLY_FAILED,
    CACHE_POLICY_NOT_FOUND,
    INSUFFICIENT_GPU_MEMORY,
    INVALID_SPEC,
    TIER_INVALID,
    TIER_NOT_FOUND,
    Problem,
)
from tokenfleet.config import OperatorConfig
from tokenfleet.handlers import cachepolicy, fleet, modeltier
from tokenfleet.handlers.children import controller_of
from tokenfleet.handlers.common import RETRY_DELAY, build_memo, refresh, settle
from tokenfleet.kube import Kube
from tokenfleet.render import Meta, Settings

SETTINGS = Settings(image="example/tokenfleet:test")


def tier(name="small", **spec):
    body = {"model": {"source": "hf://meta-llama/Llama-3.2-1B-Instruct", "parametersB": 1.24}, **spec}
    return {"apiVersion": "tokenfleet.io/v1alpha1", "kind": "ModelTier",
            "metadata": {"name": name, "namespace": "ns", "uid": "u-" + name}, "spec": body}


MODELTIER_CASES = [
    ("fits", {}, None, ["Deployment", "Service"]),
    ("unknown quantization", {"quantization": {"weights": "int3"}}, INVALID_SPEC, []),
    ("unknown gpu without memory", {"gpu": {"type": "acme-x1"}}, INVALID_SPEC, []),
    ("unknown gpu with memory", {"gpu": {"type": "acme-x1", "memoryGiB": 48, "hourlyCostUSD": 1}}, None,
     ["Deployment", "Service"]),
    ("too large", {"model": {"source": "hf://x/y", "parametersB": 70}, "gpu": {"type": "nvidia-l4"}},
     INSUFFICIENT_GPU_MEMORY, []),
]


@pytest.mark.parametrize("name, spec, reason, kinds", MODELTIER_CASES, ids=[c[0] for c in MODELTIER_CASES])
def test_modeltier_plan(name, spec, reason, kinds):
    problem, children, _, _ = modeltier.plan(tier(**spec), SETTINGS)
    assert (problem.reason if problem else None) == reason
    assert [c["kind"] for c in children] == kinds


def test_an_invalid_modeltier_names_the_field():
    problem, *_ = modeltier.plan(tier(quantization={"weights": "int3"}), SETTINGS)
    assert "spec.quantization.weights" in problem.message
    problem, *_ = modeltier.plan(tier(gpu={"type": "acme-x1"}), SETTINGS)
    assert "spec.gpu.memoryGiB" in problem.message


def test_a_model_too_large_reports_the_numbers():
    problem, _, spec, fit = modeltier.plan(tier(model={"source": "hf://x/y", "parametersB": 70}), SETTINGS)
    assert not fit.fits
    assert f"{fit.required_gib:.1f} GiB" in problem.message and f"{fit.usable_gib:.1f} GiB" in problem.message
    assert "1 x nvidia-l4" in problem.message
    assert modeltier.status_fields(None, spec, fit)["gpuMemory"].startswith("model does not fit")


def test_modeltier_status_reads_replicas_from_the_deployment():
    dep = {"status": {"replicas": 3, "readyReplicas": 2}}
    fields = modeltier.status_fields(dep, None, None)
    assert fields == {"replicas": 3, "readyReplicas": 2, "gpuMemory": None}


def test_cachepolicy_plan_renders_or_names_the_field():
    obj = {"metadata": {"name": "c", "namespace": "ns", "uid": "u"}, "spec": {"store": {"type": "redis"}}}
    problem, children = cachepolicy.plan(obj, SETTINGS)
    assert problem.reason == INVALID_SPEC and "redisSecretRef" in problem.message and children == []
    problem, children = cachepolicy.plan({**obj, "spec": {}}, SETTINGS)
    assert problem is None and [c["kind"] for c in children] == ["Deployment", "Service"]
    assert children[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "example/tokenfleet:test"


META = Meta("chat", "ns", "u-chat")


def deps(tiers=("small", "big"), missing=(), cache_missing=False, invalid=()):
    found = {t: tier(t, quantization={"weights": "int3"}) if t in invalid else tier(t) for t in tiers}
    return fleet.Dependencies(tiers=found, missing_tiers=list(missing), cache_policy_missing=cache_missing)


FLEET_CASES = [
    ("all found", {}, deps(), None),
    ("a tier missing", {}, deps(tiers=("small",), missing=("big",)), TIER_NOT_FOUND),
    ("a tier invalid", {}, deps(invalid=("big",)), TIER_INVALID),
    ("cache missing", {"cachePolicyRef": "c"}, deps(cache_missing=True), CACHE_POLICY_NOT_FOUND),
    ("cap for a tier it does not use", {"tokens": {"maxOutputTokens": {"other": 5}}}, deps(), INVALID_SPEC),
]


@pytest.mark.parametrize("name, extra, dependencies, reason", FLEET_CASES, ids=[c[0] for c in FLEET_CASES])
def test_fleet_plan(name, extra, dependencies, reason):
    spec = InferenceFleetSpec.model_validate({"tiers": ["small", "big"], **extra})
    problem, children = fleet.plan(META, spec, dependencies, SETTINGS)
    assert (problem.reason if problem else None) == reason
    assert [c["kind"] for c in children] == ([] if reason else ["ConfigMap", "Deployment", "Service"])


def test_a_missing_tier_is_named_in_the_message():
    spec = InferenceFleetSpec.model_validate({"tiers": ["small", "big"]})
    problem, _ = fleet.plan(META, spec, deps(tiers=("small",), missing=("big",)), SETTINGS)
    assert "big" in problem.message and "spec.tiers" in problem.message


def test_tier_summary_counts_ready_tiers_and_names_unready_ones():
    ready = tier("a")
    ready["status"] = {"readyReplicas": 1, "conditions": [{"type": "Ready", "status": "True"}]}
    idle = tier("b")
    idle["status"] = {"readyReplicas": 0, "conditions": [{"type": "Ready", "status": "True"}]}
    starting = tier("c")
    starting["status"] = {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Degraded", "status": "False"}]}
    broken = tier("e")
    broken["status"] = {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Degraded", "status": "True"}]}
    tiers = {"a": ready, "b": idle, "c": starting, "d": tier("d"), "e": broken}
    assert fleet.tier_summary(tiers) == (1, ["c", "d"], ["e"])  # d: not reconciled yet, so starting


DEPENDENCY_CASES = [
    ("tiers and cache", {"tiers": ["a", "b"], "cachePolicyRef": "c"},
     {("ModelTier", "ns", "a"): "f", ("ModelTier", "ns", "b"): "f", ("CachePolicy", "ns", "c"): "f"}),
    ("no cache", {"tiers": ["a"]}, {("ModelTier", "ns", "a"): "f"}),
    ("tiers not a list", {"tiers": "abc", "cachePolicyRef": 5}, {}),
    ("names not strings", {"tiers": ["a", 7, None, ""]}, {("ModelTier", "ns", "a"): "f"}),
    ("spec not a mapping", "oops", {}),
    ("no spec", None, {}),
]


@pytest.mark.parametrize("name, spec, expected", DEPENDENCY_CASES, ids=[c[0] for c in DEPENDENCY_CASES])
def test_the_dependency_index_reads_only_well_formed_names_of_a_stored_spec(name, spec, expected):
    assert fleet.dependency_keys("ns", "f", spec) == expected


OWNERS = [
    ([], None),
    ([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "controller": True}], None),
    ([{"apiVersion": "tokenfleet.io/v1alpha1", "kind": "ModelTier", "name": "t", "controller": False}], None),
    ([{"apiVersion": "tokenfleet.io/v1alpha1", "kind": "ModelTier", "name": "t", "controller": True}],
     ("ModelTier", "t")),
    ([{"apiVersion": "tokenfleet.io/v1alpha1", "kind": "Other", "name": "t", "controller": True}], None),
]


@pytest.mark.parametrize("refs, expected", OWNERS)
def test_a_child_event_finds_its_controlling_resource(refs, expected):
    assert controller_of(refs) == expected


def failing(exc: Exception):
    def reconcile():
        raise exc
    return reconcile


API_DOWN = ApiException(status=503, reason="Service Unavailable")
API_DOWN.body = json.dumps({"reason": "ServiceUnavailable", "message": "etcd is away"})

SETTLE_CASES = [
    ("converged", lambda: None, None, 0),
    ("invalid spec", lambda: Problem(INVALID_SPEC, "m"), kopf.PermanentError, 1),
    ("model too large", lambda: Problem(INSUFFICIENT_GPU_MEMORY, "m"), kopf.PermanentError, 1),
    ("missing tier", lambda: Problem(TIER_NOT_FOUND, "m"), None, 1),
    ("child refused", lambda: Problem(APPLY_FAILED, "m"), kopf.TemporaryError, 1),
    ("API error", failing(API_DOWN), kopf.TemporaryError, 1),
    ("API unreachable", failing(ConnectionRefusedError("refused")), kopf.TemporaryError, 1),
    ("a bug", failing(KeyError("x")), KeyError, 1),
]


@pytest.mark.parametrize("name, reconcile, raised, errors", SETTLE_CASES, ids=[c[0] for c in SETTLE_CASES])
def test_a_reconcile_outcome_becomes_kopf_retry_semantics_and_is_counted(name, reconcile, raised, errors):
    memo = build_memo(OperatorConfig(), Kube(api_client=None))
    if raised is None:
        settle("ModelTier", memo, reconcile)
    else:
        with pytest.raises(raised) as err:
            settle("ModelTier", memo, reconcile)
        if raised is kopf.TemporaryError:
            assert err.value.delay == RETRY_DELAY
    count = memo.metrics.get_sample_value("tokenfleet_operator_reconcile_errors_total", {"kind": "ModelTier"})
    assert count == errors


def test_an_api_failure_names_the_apis_own_message():
    memo = build_memo(OperatorConfig(), Kube(api_client=None))
    with pytest.raises(kopf.TemporaryError, match="503 ServiceUnavailable: etcd is away"):
        settle("ModelTier", memo, failing(API_DOWN))


def test_a_dependency_refresh_logs_api_failures_instead_of_raising(caplog):
    memo = build_memo(OperatorConfig(), Kube(api_client=None))
    logger = logging.getLogger("test")
    with caplog.at_level(logging.WARNING, logger="test"):
        refresh("InferenceFleet", memo, failing(API_DOWN), logger)
    assert "reconciling InferenceFleet failed: 503 ServiceUnavailable: etcd is away" in caplog.text
    with pytest.raises(KeyError):
        refresh("InferenceFleet", memo, failing(KeyError("x")), logger)
    count = memo.metrics.get_sample_value("tokenfleet_operator_reconcile_errors_total", {"kind": "InferenceFleet"})
    assert count == 2
