"""``tokenfleet plan``: what a fleet would cost on a trace, and what each lever saves (docs/cost-model.md).

    from tokenfleet.plan import Assumptions, build_plan, fleet_from_documents
    plan = build_plan(fleet_from_documents(docs), load_trace("trace.csv"), Assumptions(cache_hit_rate=0.2))
"""

from tokenfleet.plan.fleet import fleet_from_documents
from tokenfleet.plan.model import Assumptions, FleetInput, Plan, Stage, TierBill
from tokenfleet.plan.stages import PlanError, build_plan

__all__ = ["Assumptions", "FleetInput", "Plan", "PlanError", "Stage", "TierBill", "build_plan",
           "fleet_from_documents"]
