"""kopf wiring for ModelTier: the vLLM Deployment and Service, the GPU memory check, conditions.

A tier whose model cannot fit its GPUs gets no Deployment (its pods could never start); one
that exists already keeps its last good spec. After creation the Deployment's replica count
belongs to the autoscaler, unless the tier pins ``spec.replicas``.
"""

from __future__ import annotations

import kopf

from tokenfleet import GROUP, VERSION
from tokenfleet.api.v1alpha1 import KINDS, ModelTierSpec
from tokenfleet.conditions import INSUFFICIENT_GPU_MEMORY, INVALID_SPEC, Problem, Workload, workload_conditions
from tokenfleet.config import OperatorConfig
from tokenfleet.gpus import MemoryFit
from tokenfleet.handlers.common import apply_children, held, register_forget_conditions, settle, write_status
from tokenfleet.render import Meta, RenderError, Settings, build_modeltier, gpu_memory_fit, validate_spec

KIND = "ModelTier"
PLURAL = KINDS[KIND].plural
REPLICAS = ("spec", "replicas")


def plan(obj: dict, settings: Settings) -> tuple[Problem | None, list[dict], ModelTierSpec | None, MemoryFit | None]:
    """Pure: the children a tier should have, or the problem that prevents them."""
    meta = Meta.from_object(obj)
    try:
        spec = validate_spec(KIND, meta.name, obj.get("spec"))
        fit = gpu_memory_fit(meta.name, spec)
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
    with held(memo, KIND, namespace, name) as obj:
        if obj is None:
            return None
        problem, children, spec, fit = plan(obj, memo.settings)
        keep = (REPLICAS,) if spec is not None and spec.replicas is None else ()  # the autoscaler owns replicas
        deployment, failed = apply_children(memo.kube, KIND, obj, children, keep)
        problem = problem or failed
        workload = Workload.from_deployment(deployment) if deployment else None
        write_status(memo, obj, status_fields(deployment, spec, fit), workload_conditions(workload, problem), problem)
        return problem


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Handlers: the tier's own changes (its events also re-reconcile its fleets: see handlers.fleet)."""
    register_forget_conditions(registry, KIND)

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="modeltier")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="modeltier")
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="modeltier")
    def modeltier_changed(namespace: str, name: str, memo: kopf.Memo, **_) -> None:
        settle(KIND, memo, lambda: reconcile(memo, namespace, name))
