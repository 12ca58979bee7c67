"""kopf wiring for ModelTier: the vLLM Deployment and Service, the GPU memory check, conditions.

A tier whose model cannot fit its GPUs gets no Deployment (its pods could never start); one
that exists already keeps its last good spec. After creation the Deployment's replica count
belongs to the autoscaler, unless the tier pins ``spec.replicas``.
"""

from __future__ import annotations

import logging

import kopf
from kubernetes.client.exceptions import ApiException

from tokenfleet import API_VERSION, GROUP, VERSION
from tokenfleet.api.v1alpha1 import KINDS, ModelTierSpec
from tokenfleet.conditions import INSUFFICIENT_GPU_MEMORY, INVALID_SPEC, Problem, Workload, workload_conditions
from tokenfleet.config import OperatorConfig
from tokenfleet.gpus import MemoryFit
from tokenfleet.handlers import fleet
from tokenfleet.handlers.common import apply_problem, gone, refresh, settle, write_status
from tokenfleet.render import Meta, RenderError, Settings, build_modeltier, child_name, gpu_memory_fit, validate_spec

KIND = "ModelTier"
PLURAL = KINDS[KIND].plural
REPLICAS = ("spec", "replicas")


def plan(obj: dict, settings: Settings) -> tuple[Problem | None, list[dict], ModelTierSpec | None, MemoryFit | None]:
    """Pure: the children a tier should have, or the problem that prevents them."""
    meta = Meta.from_object(obj)
    try:
        spec = validate_spec(KIND, meta.name, obj.get("spec"))
        fit = gpu_memory_fit(spec)
        children = build_modeltier(meta, spec, settings)
    except RenderError as err:
        return Problem(INVALID_SPEC, str(err)), [], None, None
    if not fit.fits:
        message = f"ModelTier {meta.name}: {fit.message(spec.gpu.type, spec.gpu.count)}"
        return Problem(INSUFFICIENT_GPU_MEMORY, message), [], spec, fit
    return None, children, spec, fit


def status_fields(deployment: dict | None, spec: ModelTierSpec | None, fit: MemoryFit | None) -> dict:
    status = (deployment or {}).get("status") or {}
    return {
        "replicas": int(status.get("replicas") or 0),
        "readyReplicas": int(status.get("readyReplicas") or 0),
        "gpuMemory": fit.message(spec.gpu.type, spec.gpu.count) if fit and spec else None,
    }


def reconcile(memo: kopf.Memo, namespace: str, name: str) -> Problem | None:
    """Bring one tier's children and status in line with its spec; returns the problem, if any."""
    kube = memo.kube
    with memo.locks.hold((KIND, namespace, name)):
        obj = kube.get(API_VERSION, KIND, namespace, name)
        if gone(obj):
            return None
        problem, children, spec, fit = plan(obj, memo.settings)
        deployment = None
        if problem is None:
            keep = () if spec.replicas is not None else (REPLICAS,)  # the autoscaler owns replicas
            try:
                for child in children:
                    live, _ = kube.apply(child, keep if child["kind"] == "Deployment" else ())
                    if child["kind"] == "Deployment":
                        deployment = live
            except ApiException as err:
                problem = apply_problem(KIND, name, err)
        if deployment is None:
            deployment = kube.get("apps/v1", "Deployment", namespace, child_name(KIND, name))
        workload = Workload.from_deployment(deployment) if deployment else None
        write_status(memo, obj, status_fields(deployment, spec, fit), workload_conditions(workload, problem), problem)
        return problem


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Handlers: the tier's own changes, and its events re-reconcile the fleets that use it."""

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="modeltier")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="modeltier")
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="modeltier")
    def modeltier_changed(namespace: str, name: str, memo: kopf.Memo, **_) -> None:
        settle(KIND, memo, lambda: reconcile(memo, namespace, name))

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="modeltier_fleets")
    def modeltier_event(namespace: str, name: str, memo: kopf.Memo, fleet_dependencies: kopf.Index,
                        logger: logging.Logger, **_) -> None:
        for fleet_name in sorted(set(fleet_dependencies.get((KIND, namespace, name), []))):
            refresh(fleet.KIND, memo, lambda f=fleet_name: fleet.reconcile(memo, namespace, f), logger)
