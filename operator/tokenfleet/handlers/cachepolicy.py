"""kopf wiring for CachePolicy: the cache service Deployment and Service, conditions, endpoint."""

from __future__ import annotations

import kopf

from tokenfleet import GROUP, VERSION
from tokenfleet.api.v1alpha1 import KINDS
from tokenfleet.conditions import INVALID_SPEC, Problem, Workload, workload_conditions
from tokenfleet.config import OperatorConfig
from tokenfleet.handlers.common import apply_children, held, register_forget_conditions, settle, write_status
from tokenfleet.render import CACHE_PORT, Meta, RenderError, Settings, build_cachepolicy, service_url, validate_spec

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
    with held(memo, KIND, namespace, name) as obj:
        if obj is None:
            return None
        problem, children = plan(obj, memo.settings)
        deployment, failed = apply_children(memo.kube, KIND, obj, children)
        problem = problem or failed
        workload = Workload.from_deployment(deployment) if deployment else None
        fields = {
            "endpoint": service_url(KIND, name, namespace, CACHE_PORT) if deployment else None,
            "readyReplicas": int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0),
        }
        write_status(memo, obj, fields, workload_conditions(workload, problem), problem)
        return problem


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Handlers: the policy's own changes (its events also re-reconcile its fleets: see handlers.fleet)."""
    register_forget_conditions(registry, KIND)

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="cachepolicy")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="cachepolicy")
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="cachepolicy")
    def cachepolicy_changed(namespace: str, name: str, memo: kopf.Memo, **_) -> None:
        settle(KIND, memo, lambda: reconcile(memo, namespace, name))
