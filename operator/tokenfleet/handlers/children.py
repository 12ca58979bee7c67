"""kopf wiring for the children: their events (a Deployment becomes available, someone edits or
deletes a child) re-reconcile the custom resource that owns them, so status follows without polling.
"""

from __future__ import annotations

import logging

import kopf

from tokenfleet import GROUP
from tokenfleet.config import OperatorConfig
from tokenfleet.handlers import cachepolicy, fleet, modeltier
from tokenfleet.handlers.common import refresh

MANAGED = {"app.kubernetes.io/managed-by": "tokenfleet-operator"}
SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED.items())
WATCHED = (("apps", "v1", "deployments"), ("v1", "services"), ("v1", "configmaps"))  # kopf selector args
RECONCILERS = {
    modeltier.KIND: modeltier.reconcile,
    cachepolicy.KIND: cachepolicy.reconcile,
    fleet.KIND: fleet.reconcile,
}


def controller_of(owner_references: list[dict] | None) -> tuple[str, str] | None:
    """(kind, name) of the tokenfleet.io resource that controls a child, if any."""
    for ref in owner_references or []:
        if ref.get("controller") and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/"):
            if ref.get("kind") in RECONCILERS and ref.get("name"):
                return ref["kind"], ref["name"]
    return None


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """One event handler per child kind, filtered by our managed-by label (also server-side, see settings)."""
    for selector in WATCHED:

        @kopf.on.event(*selector, labels=MANAGED, registry=registry, id=f"child_{selector[-1]}")
        def child_event(namespace: str, meta: dict, memo: kopf.Memo, logger: logging.Logger, **_) -> None:
            owner = controller_of(meta.get("ownerReferences"))
            if owner is None:
                return
            kind, name = owner
            refresh(kind, memo, lambda: RECONCILERS[kind](memo, namespace, name), logger)
