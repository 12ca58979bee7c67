"""kopf wiring for InferenceFleet: the router's ConfigMap, Deployment and Service, from its tiers' specs.

A fleet whose tiers or cache policy are missing gets ``Ready=False`` (TierNotFound,
CachePolicyNotFound) and no router config with a hole: the last good one stays. It recovers by
itself: the ``fleet_dependencies`` index maps each tier and cache policy to the fleets naming
them, and their events re-reconcile those fleets (also when a tier's spec, hence a price, changes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import kopf

from tokenfleet import API_VERSION, GROUP, VERSION
from tokenfleet.api.v1alpha1 import KINDS, InferenceFleetSpec, ModelTierSpec
from tokenfleet.conditions import (
    CACHE_POLICY_NOT_FOUND,
    DEGRADED,
    INVALID_SPEC,
    READY,
    TIER_INVALID,
    TIER_NOT_FOUND,
    Problem,
    Workload,
    fleet_conditions,
    get_condition,
)
from tokenfleet.config import OperatorConfig
from tokenfleet.handlers.common import (
    apply_children, gone, held, refresh, register_forget_conditions, settle, write_status,
)
from tokenfleet.render import ROUTER_PORT, Meta, RenderError, Settings, build_fleet, service_url, validate_spec

KIND = "InferenceFleet"
PLURAL = KINDS[KIND].plural


@dataclass
class Dependencies:
    """What a fleet's spec names, as found in its namespace."""

    tiers: dict[str, dict] = field(default_factory=dict)  # name -> ModelTier object, for those that exist
    missing_tiers: list[str] = field(default_factory=list)
    cache_policy_missing: bool = False


def dependency_keys(namespace: str, name: str, spec: object) -> dict[tuple[str, str, str], str]:
    """Pure: (kind, namespace, name) of every ModelTier and CachePolicy a fleet's raw spec names -> the fleet.

    Reads the spec as stored, which need not be valid (the fleet's own handler reports that): only
    string names count.
    """
    spec = spec if isinstance(spec, dict) else {}
    tiers = spec.get("tiers") if isinstance(spec.get("tiers"), list) else []
    keys = {("ModelTier", namespace, t): name for t in tiers if isinstance(t, str) and t}
    ref = spec.get("cachePolicyRef")
    if isinstance(ref, str) and ref:
        keys[("CachePolicy", namespace, ref)] = name
    return keys


def fetch_dependencies(kube, namespace: str, spec: InferenceFleetSpec) -> Dependencies:
    """The tiers and cache policy the fleet names, as they exist in its namespace now."""
    deps = Dependencies()
    for tier in spec.tiers:
        obj = kube.get(API_VERSION, "ModelTier", namespace, tier)
        if gone(obj):
            deps.missing_tiers.append(tier)
        else:
            deps.tiers[tier] = obj
    if spec.cache_policy_ref:
        deps.cache_policy_missing = gone(kube.get(API_VERSION, "CachePolicy", namespace, spec.cache_policy_ref))
    return deps


def plan(meta: Meta, spec: InferenceFleetSpec, deps: Dependencies,
         settings: Settings) -> tuple[Problem | None, list[dict]]:
    """Pure: the router's children from the fleet and its tiers, or the problem that prevents them."""
    where = f"InferenceFleet {meta.name}"
    if deps.missing_tiers:
        return Problem(TIER_NOT_FOUND, f"{where}: spec.tiers: ModelTier not found in namespace {meta.namespace}: "
                                       f"{', '.join(deps.missing_tiers)}"), []
    tier_specs: dict[str, ModelTierSpec] = {}
    invalid = []
    for name, obj in deps.tiers.items():
        try:
            tier_specs[name] = validate_spec("ModelTier", name, obj.get("spec"))
        except RenderError:
            invalid.append(name)
    if invalid:
        return Problem(TIER_INVALID, f"{where}: spec.tiers: ModelTier with an invalid spec (see its Ready "
                                     f"condition): {', '.join(invalid)}"), []
    if deps.cache_policy_missing:
        return Problem(CACHE_POLICY_NOT_FOUND, f"{where}: spec.cachePolicyRef: CachePolicy "
                                               f"{spec.cache_policy_ref!r} not found in namespace {meta.namespace}"), []
    try:
        return None, build_fleet(meta, spec, tier_specs, settings)
    except RenderError as err:
        return Problem(INVALID_SPEC, str(err)), []


def tier_summary(tiers: dict[str, dict]) -> tuple[int, list[str], list[str]]:
    """Tiers with ready replicas, and the names of the tiers whose Ready condition is not True: those
    still starting (not Degraded: a new tier loading its weights), and those that need a human
    (Degraded: a problem with the spec, a rollout past its deadline)."""
    ready = sum(1 for obj in tiers.values() if int((obj.get("status") or {}).get("readyReplicas") or 0) >= 1)
    starting, failing = [], []
    for name, obj in tiers.items():
        conditions = (obj.get("status") or {}).get("conditions")
        if (get_condition(conditions, READY) or {}).get("status") == "True":
            continue
        degraded = (get_condition(conditions, DEGRADED) or {}).get("status") == "True"
        (failing if degraded else starting).append(name)
    return ready, starting, failing


def reconcile(memo: kopf.Memo, namespace: str, name: str) -> Problem | None:
    """Bring one fleet's router in line with its spec and its tiers; returns the problem, if any."""
    with held(memo, KIND, namespace, name) as obj:
        if obj is None:
            return None
        deps = Dependencies()
        try:
            spec = validate_spec(KIND, name, obj.get("spec"))
        except RenderError as err:
            problem, children = Problem(INVALID_SPEC, str(err)), []
        else:
            deps = fetch_dependencies(memo.kube, namespace, spec)
            problem, children = plan(Meta.from_object(obj), spec, deps, memo.settings)
        router, failed = apply_children(memo.kube, KIND, obj, children)
        problem = problem or failed
        ready_tiers, starting, failing = tier_summary(deps.tiers)
        fields = {
            "endpoint": service_url(KIND, name, namespace, ROUTER_PORT) + "/v1" if router else None,
            "readyTiers": ready_tiers,
        }
        workload = Workload.from_deployment(router) if router else None
        write_status(memo, obj, fields, fleet_conditions(workload, problem, failing, starting), problem)
        return problem


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Handlers: the fleet's own changes, the index of what each fleet names, and those objects' events."""
    register_forget_conditions(registry, KIND)

    @kopf.index(GROUP, VERSION, PLURAL, registry=registry, id="fleet_dependencies")
    def fleet_dependencies(namespace: str, name: str, body: kopf.Body, **_) -> dict:
        """(kind, namespace, name) of every ModelTier and CachePolicy a fleet names -> the fleet's name."""
        return dependency_keys(namespace, name, body.get("spec"))

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="fleet")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="fleet")
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="fleet")
    def fleet_changed(namespace: str, name: str, memo: kopf.Memo, **_) -> None:
        settle(KIND, memo, lambda: reconcile(memo, namespace, name))

    for dependency in ("ModelTier", "CachePolicy"):
        watch_dependency(registry, dependency)


def watch_dependency(registry: kopf.OperatorRegistry, kind: str) -> None:
    """Every event of a ``kind`` object (spec, status, deletion) re-reconciles the fleets that name it."""

    @kopf.on.event(GROUP, VERSION, KINDS[kind].plural, registry=registry, id=f"{kind.lower()}_fleets")
    def dependency_event(namespace: str, name: str, memo: kopf.Memo, fleet_dependencies: kopf.Index,
                         logger: logging.Logger, **_) -> None:
        for fleet_name in sorted(set(fleet_dependencies.get((kind, namespace, name), []))):
            refresh(KIND, memo, lambda f=fleet_name: reconcile(memo, namespace, f), logger)
