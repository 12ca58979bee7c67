"""Reads the fleet that ``plan`` prices from the same YAML documents ``kubectl apply`` would take."""

from __future__ import annotations

from tokenfleet import API_VERSION
from tokenfleet.plan.model import FleetInput
from tokenfleet.plan.stages import PlanError
from tokenfleet.render import RenderError, validate_spec


def fleet_from_documents(docs: list[dict], name: str | None = None) -> FleetInput:
    """The InferenceFleet ``name`` (or the only one), its ModelTiers in order and its CachePolicy."""
    ours = [d for d in docs if isinstance(d, dict) and d.get("apiVersion") == API_VERSION]
    by_kind: dict[str, dict[str, dict]] = {}
    for doc in ours:
        by_kind.setdefault(doc.get("kind", ""), {})[(doc.get("metadata") or {}).get("name", "")] = doc
    fleets = by_kind.get("InferenceFleet", {})
    if name is None and len(fleets) != 1:
        raise PlanError(f"expected exactly one InferenceFleet in the files, found {len(fleets)}"
                        + ("; choose one with --fleet" if fleets else ""))
    fleet_doc = fleets.get(name) if name else next(iter(fleets.values()))
    if fleet_doc is None:
        raise PlanError(f"InferenceFleet {name!r} not found; the files hold: {', '.join(fleets) or 'none'}")
    fleet_name = fleet_doc["metadata"]["name"]
    try:
        spec = validate_spec("InferenceFleet", fleet_name, fleet_doc.get("spec"))
        tiers = []
        for tier in spec.tiers:
            doc = by_kind.get("ModelTier", {}).get(tier)
            if doc is None:
                raise PlanError(f"InferenceFleet {fleet_name}: spec.tiers: ModelTier {tier!r} is not in the files")
            tiers.append((tier, validate_spec("ModelTier", tier, doc.get("spec"))))
        cache = None
        if spec.cache_policy_ref:
            doc = by_kind.get("CachePolicy", {}).get(spec.cache_policy_ref)
            if doc is None:
                raise PlanError(f"InferenceFleet {fleet_name}: spec.cachePolicyRef: CachePolicy "
                                f"{spec.cache_policy_ref!r} is not in the files")
            cache = validate_spec("CachePolicy", spec.cache_policy_ref, doc.get("spec"))
    except RenderError as err:
        raise PlanError(str(err)) from None
    return FleetInput(fleet_name, tuple(tiers), spec, cache)
