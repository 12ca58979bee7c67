"""``tokenfleet plan -f FLEET.yaml --trace TRACE.csv``: monthly cost of a fleet on a trace, lever by lever."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tokenfleet.plan import model


def _shares(value: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 0.6,0.3,0.1: {value!r}") from None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "What a fleet would cost before you apply it: replays a request trace through the operator's scaling "
        "policy and the engine performance model (the code the operator and bench/ use) and prints the monthly "
        "cost split into C_input, C_output and C_infra per tier, and the saving of each lever (batching, "
        "quantization, autoscaling, cascade, cache) against a baseline. See docs/cost-model.md.")
    add = parser.add_argument
    add("-f", "--filename", action="append", required=True,
        help="YAML file or directory with the InferenceFleet, its ModelTiers and CachePolicy; repeatable")
    add("--trace", required=True, help="CSV with TIMESTAMP, ContextTokens, GeneratedTokens (the Azure LLM trace format)")
    add("--fleet", help="the InferenceFleet to price when the files hold several")
    add("--limit", type=int, help="use only the first N requests of the trace")
    a = parser.add_argument_group("assumptions a trace cannot give (docs/cost-model.md)")
    a.add_argument("--cache-hit-rate", type=float,
                   help=f"share of requests the cache answers (default {model.DEFAULT_CACHE_HIT_RATE:g} when the "
                        "fleet has a cachePolicyRef, else 0)")
    a.add_argument("--small-tier-share", type=float, default=model.DEFAULT_SMALL_TIER_SHARE,
                   help="share of the requests reaching a tier that it answers (each tier but the last; default "
                        "%(default)s, i.e. 0.6, 0.24, 0.16 for three tiers)")
    a.add_argument("--tier-shares", type=_shares, metavar="S1,S2,...",
                   help="share of all requests each tier answers, cheapest first, summing to 1 (overrides "
                        "--small-tier-share)")
    a.add_argument("--baseline-batch", type=int, default=1,
                   help="the baseline's batch size; 1 = one request at a time, no batching (default 1)")
    a.add_argument("--peak-window", type=float, default=model.DEFAULT_PEAK_WINDOW,
                   help="seconds over which static fleets are sized for the busiest window (default 60)")
    a.add_argument("--startup-seconds", type=float, default=model.STARTUP_SECONDS,
                   help="seconds from asking for a replica until it serves (default 90)")
    a.add_argument("--cpu-hourly-usd", type=float, default=model.CPU_HOURLY_USD,
                   help="price of a vCPU-hour for the router and cache (default 0.05)")
    a.add_argument("--hours-per-month", type=float, default=model.HOURS_PER_MONTH,
                   help="hours in a billing month (default 730, the cloud providers' month)")
    a.add_argument("--seed", type=int, default=0, help="seed of the cache-hit and tier draws (default 0)")
    api = parser.add_argument_group("break-even against an API (both or neither)")
    api.add_argument("--api-price-input", type=float, metavar="USD", help="API price per 1M prompt tokens")
    api.add_argument("--api-price-output", type=float, metavar="USD", help="API price per 1M output tokens")
    out = parser.add_argument_group("output")
    out.add_argument("--html", default="tokenfleet-plan.html",
                     help="write the report with charts here (default %(default)s; empty: none)")
    out.add_argument("--json", action="store_true", help="print a JSON object instead of the tables")


def run(args: argparse.Namespace) -> int:
    from tokenfleet.commands.render import read_documents
    from tokenfleet.plan import Assumptions, PlanError, build_plan, fleet_from_documents
    from tokenfleet.plan import report
    from tokenfleet.plan.model import break_even
    from tokenfleet.plan.stages import floor_monthly
    from tokenfleet.replay import load_trace

    if (args.api_price_input is None) != (args.api_price_output is None):
        print("error: give both --api-price-input and --api-price-output, or neither", file=sys.stderr)
        return 2
    try:
        fleet = fleet_from_documents(read_documents(args.filename), args.fleet)
        requests = load_trace(args.trace, args.limit)
        assumptions = Assumptions(
            cache_hit_rate=args.cache_hit_rate, tier_shares=args.tier_shares, small_tier_share=args.small_tier_share,
            baseline_max_num_seqs=args.baseline_batch, peak_window=args.peak_window,
            startup_seconds=args.startup_seconds, cpu_hourly_usd=args.cpu_hourly_usd,
            hours_per_month=args.hours_per_month, seed=args.seed)
        if not args.json:
            print(f"replaying {len(requests):,} requests through each lever ...", file=sys.stderr, flush=True)
        plan = build_plan(fleet, requests, assumptions)
    except KeyError as err:
        print(f"error: {args.trace}: no column {err}; expected TIMESTAMP, ContextTokens, GeneratedTokens",
              file=sys.stderr)
        return 1
    except (OSError, ValueError, PlanError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    be = None
    if args.api_price_input is not None:
        be = break_even(plan, floor_monthly(fleet, plan), args.api_price_input, args.api_price_output)
    name = Path(args.trace).name
    print(json.dumps(report.to_dict(plan, be), indent=1) if args.json else report.text(plan, name, be), flush=True)
    if args.html:
        Path(args.html).write_text(report.html(plan, name, be))
        if not args.json:
            print(f"\nreport: {args.html}")
    return 0
