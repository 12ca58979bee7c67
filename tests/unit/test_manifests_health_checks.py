"""Health checks for GitOps: Argo CD's (Lua) and Flux's (CEL) verdict for each state of a resource's conditions."""

from __future__ import annotations

from pathlib import Path

import celpy
import pytest
import yaml
from lupa import lua51  # the test extra; Lua 5.1 is what Argo CD's interpreter (gopher-lua) speaks

REPO = Path(__file__).resolve().parents[2]
SCRIPT = (REPO / "manifests" / "argocd" / "health.lua").read_text()
# Argo CD's Lua sandbox opens no os/io/package libraries: a script that needs them breaks there.
SANDBOXED = ("os", "io", "require", "dofile", "loadfile", "package", "debug")


def health(obj: dict, script: str = SCRIPT) -> tuple[str, str]:
    """(status, message) the script returns for ``obj``, run as Argo CD runs it."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    env = lua.globals()
    for name in SANDBOXED:
        env[name] = None
    env.obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    return result["status"], result["message"]


def cond(kind: str, status: str, reason: str = "", message: str = "") -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-11-24T10:00:00Z"}


def resource(generation: int | None = 2, observed: int | None = 2, conditions: list | None = None,
             status: bool = True) -> dict:
    obj = {"apiVersion": "tokenfleet.io/v1alpha1", "kind": "ModelTier", "metadata": {"name": "small"}}
    if generation is not None:
        obj["metadata"]["generation"] = generation
    if status:
        obj["status"] = {"replicas": 1}
        if observed is not None:
            obj["status"]["observedGeneration"] = observed
        if conditions is not None:
            obj["status"]["conditions"] = conditions
    return obj


READY = cond("Ready", "True", "Reconciled", "2/2 replicas ready")
NOT_PROGRESSING = cond("Progressing", "False", "Stable")
NOT_DEGRADED = cond("Degraded", "False", "AsExpected")

CASES = {
    "no status yet": (resource(status=False), "Progressing", "Waiting for the tokenfleet operator"),
    "status without conditions": (resource(conditions=None), "Progressing", "Waiting for the tokenfleet operator"),
    "ready and current": (resource(conditions=[READY, NOT_PROGRESSING, NOT_DEGRADED]), "Healthy",
                          "Reconciled: 2/2 replicas ready"),
    "ready without a generation": (resource(generation=None, observed=None, conditions=[READY]), "Healthy",
                                   "Reconciled"),
    "stale generation": (resource(generation=3, observed=2, conditions=[READY]), "Progressing",
                         "observe generation 3"),
    "never observed": (resource(generation=1, observed=None, conditions=[READY]), "Progressing",
                       "observe generation 1"),
    "degraded while ready": (resource(conditions=[READY, cond("Degraded", "True", "PrometheusUnreachable",
                                                              "replicas held at 2")]),
                             "Degraded", "PrometheusUnreachable: replicas held at 2"),
    "not ready, gave up": (resource(conditions=[cond("Ready", "False", "InsufficientGPUMemory",
                                                     "needs 141 GiB, 2 x nvidia-l4 have 48 GiB"), NOT_PROGRESSING]),
                           "Degraded", "InsufficientGPUMemory: needs 141 GiB"),
    "not ready, rolling out": (resource(conditions=[cond("Ready", "False", "ReplicasNotReady"),
                                                    cond("Progressing", "True", "ScalingUp", "0/2 replicas ready")]),
                               "Progressing", "ScalingUp: 0/2 replicas ready"),
    "ready unknown": (resource(conditions=[cond("Ready", "Unknown")]), "Progressing",
                      "Waiting for the tokenfleet operator"),
    "tier missing": (resource(conditions=[cond("Ready", "False", "TierNotFound", "tier llama-70b not found")]),
                     "Degraded", "TierNotFound: tier llama-70b not found"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_health_follows_conditions_and_generation(case):
    obj, want_status, want_message = CASES[case]
    status, message = health(obj)
    assert status == want_status
    assert want_message in message


FLUX_EXAMPLE = REPO / "manifests" / "flux" / "kustomization-example.yaml"


def flux_health(obj: dict, exprs: dict) -> str:
    """Flux's verdict in Argo CD's words: inProgress, then failed, then current; none true: in progress."""
    env = celpy.Environment()
    activation = {key: celpy.json_to_cel(value) for key, value in obj.items()}
    for key, verdict in (("inProgress", "Progressing"), ("failed", "Degraded"), ("current", "Healthy")):
        if key in exprs and bool(env.program(env.compile(exprs[key])).evaluate(activation)):
            return verdict
    return "Progressing"


@pytest.mark.parametrize("case", sorted(CASES))
def test_flux_health_expressions_agree_with_argo_cd(case):
    obj, want_status, _ = CASES[case]
    spec = yaml.safe_load(FLUX_EXAMPLE.read_text())["spec"]
    checks = {c["kind"]: c for c in spec["healthCheckExprs"]}
    assert set(checks) == {"ModelTier", "CachePolicy", "InferenceFleet"}
    for check in checks.values():
        assert check["apiVersion"] == "tokenfleet.io/v1alpha1"
        assert flux_health(obj, check) == want_status


def test_argocd_cm_patch_installs_the_script_for_all_three_kinds():
    patch = yaml.safe_load((REPO / "manifests" / "argocd" / "argocd-cm.yaml").read_text())
    assert patch["metadata"]["name"] == "argocd-cm"
    kinds = {yaml.safe_load(p.read_text())["spec"]["names"]["kind"] for p in (REPO / "crds").glob("*.yaml")}
    assert set(patch["data"]) == {f"resource.customizations.health.tokenfleet.io_{k}" for k in kinds}
    assert set(patch["data"].values()) == {SCRIPT}


def test_gitops_doc_shows_the_same_health_check():
    doc = (REPO / "docs" / "gitops.md").read_text()
    assert "resource.customizations.health.tokenfleet.io_ModelTier" in doc
    assert "manifests/argocd/argocd-cm.yaml" in doc
    assert "manifests/flux/kustomization-example.yaml" in doc
