"""kopf wiring for CachePolicy: the cache service Deployment and Service, conditions, endpoint."""

from __future__ import annotations

import logging

import kopf
from kubernetes.client.exceptions import ApiException

from tokenfleet import API_VERSION, GROUP, VERSION
from tokenfleet.api.v1alpha1 import KINDS
from tokenfleet.conditions import INVALID_SPEC, Problem, Workload, workload_conditions
from tokenfleet.config import OperatorConfig
from tokenfleet.handlers import fleet
from tokenfleet.handlers.common import apply_problem, gone, refresh, settle, write_status
from tokenfleet.render import (
    CACHE_PORT,
    Meta,
    RenderError,
    Settings,
    build_cachepolicy,
    child_name,
    service_url,
    validate_spec,
)

KIND = "CachePolicy"
PLURAL = KINDS[KIND].plural


def plan(obj: dict, settings: Settings) -> tuple[Problem | None, list[dict]]:
    """Pure: the children a cache policy should have, or the problem that prevents them."""
    meta = Meta.from_object(obj)
    try:
        spec = validate_spec(KIND, meta.name, obj.get("spec"))
        return None, build_cachepolicy(meta, spec, settings)
    except RenderError as err:
        return Problem(INVALID_SPEC, str(err)), []


def reconcile(memo: kopf.Memo, namespace: str, name: str) -> Problem | None:
    """Bring one cache policy's children and status in line with its spec; returns the problem, if any."""
    kube = memo.kube
    with memo.locks.hold((KIND, namespace, name)):
        obj = kube.get(API_VERSION, KIND, namespace, name)
        if gone(obj):
            return None
        problem, children = plan(obj, memo.settings)
        deployment = None
        try:
            for child in children:
                live, _ = kube.apply(child)
                if child["kind"] == "Deployment":
                    deployment = live
        except ApiException as err:
            problem = apply_problem(KIND, name, err)
        if deployment is None:
            deployment = kube.get("apps/v1", "Deployment", namespace, child_name(KIND, name))
        workload = Workload.from_deployment(deployment) if deployment else None
        fields = {
            "endpoint": service_url(KIND, name, namespace, CACHE_PORT) if deployment else None,
            "readyReplicas": int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0),
        }
        write_status(memo, obj, fields, workload_conditions(workload, problem), problem)
        return problem


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Handlers: the policy's own changes, and its events re-reconcile the fleets that use it."""

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="cachepolicy")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="cachepolicy")
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="cachepolicy")
    def cachepolicy_changed(namespace: str, name: str, memo: kopf.Memo, **_) -> None:
        settle(KIND, memo, lambda: reconcile(memo, namespace, name))

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="cachepolicy_fleets")
    def cachepolicy_event(namespace: str, name: str, memo: kopf.Memo, fleet_dependencies: kopf.Index,
                          logger: logging.Logger, **_) -> None:
        for fleet_name in sorted(set(fleet_dependencies.get((KIND, namespace, name), []))):
            refresh(fleet.KIND, memo, lambda f=fleet_name: fleet.reconcile(memo, namespace, f), logger)
