"""Autoscaler benchmark: replay a request trace through tokenfleet's policy and two baselines.

    python bench/autoscale.py --trace ../shared/data/traces/azure_llm_2023_conv.csv

Every run replays the same trace through the engine emulator's continuous-batching simulator on
the tier's ``perf.EngineProfile`` (``tokenfleet.replay``), with a replica start-up delay, and
compares three scalers: tokenfleet's ``autoscaling.desired_replicas``, a KEDA-style baseline on
``sum(vllm:num_requests_waiting) > 5`` (through HPA v2 semantics) and a static fleet sized for
the trace's peak minute. The last line of output is one JSON object (see docs/autoscaling.md).
Not part of CI: figures live here, never in tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from tokenfleet.api.v1alpha1 import ModelTierSpec  # noqa: E402
from tokenfleet.autoscaling import ScalingPolicy  # noqa: E402
from tokenfleet.plan.model import window_replicas  # noqa: E402
from tokenfleet.replay import FleetModel, Request, floor_cost_per_million_tokens, load_trace, replay  # noqa: E402
from tokenfleet.scalers import ForesightScaler, PolicyScaler, QueueThresholdScaler, StaticScaler  # noqa: E402


WARM_MINUTES = 5  # the autoscalers start with the replicas the trace's first minutes need


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", required=True, help="CSV with TIMESTAMP, ContextTokens, GeneratedTokens")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N requests")
    parser.add_argument("--minutes", default=None, metavar="FROM:TO",
                        help="replay only the requests between these minutes of the trace, e.g. 30:60")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="replay the arrivals this many times faster: that many times the load, the same "
                        "request mix, swings that much faster (default: 1)")
    parser.add_argument("--copies", type=int, default=1,
                        help="overlay N copies of the trace, copy i shifted cyclically by i/N of its span: N times "
                        "the load with the same request mix and arrival pattern (default: 1)")
    parser.add_argument("--gpu", default="nvidia-l4", help="GPU type of one replica (default: nvidia-l4)")
    parser.add_argument("--gpu-count", type=int, default=1, help="GPUs per replica (default: 1)")
    parser.add_argument("--parameters-b", type=float, default=8.0, help="model size in billions (default: 8)")
    parser.add_argument("--weights", default="awq", help="weight precision: none, fp8, int8, awq, ... (default: awq)")
    parser.add_argument("--ttft-slo", type=float, default=2.5,
                        help="TTFT SLO in seconds (default: 2.5, a bound of vLLM's TTFT histogram buckets)")
    parser.add_argument("--max-utilization", type=float, default=None,
                        help="scaling.maxUtilization (default: the API default)")
    parser.add_argument("--scale-down-stabilization", default=None, metavar="DURATION",
                        help="scaling.scaleDownStabilization, e.g. 120s (default: the API default, 5m); reversals "
                        "are still counted within this window")
    parser.add_argument("--scale-down-cooldown", default=None, metavar="DURATION",
                        help="scaling.scaleDownCooldown, e.g. 60s (default: the API default, 2m)")
    parser.add_argument("--max-num-batched-tokens", type=int, default=None,
                        help="engine.maxNumBatchedTokens, the chunked-prefill budget per step (default: 2048)")
    parser.add_argument("--headroom", type=float, default=None,
                        help="policy: scale down only while the predicted load stays within this share of each "
                        "guardrail (default: the policy's)")
    parser.add_argument("--startup-seconds", type=float, default=90.0,
                        help="seconds from asking for a replica until it serves (default: 90)")
    parser.add_argument("--queue-threshold", type=float, default=5.0,
                        help="baseline: waiting requests per replica that KEDA targets (default: 5)")
    parser.add_argument("--max-replicas", type=int, default=None,
                        help="maxReplicas of both autoscalers (default: twice the replicas of the peak minute)")
    parser.add_argument("--only-policy", action="store_true", help="replay tokenfleet's policy only (faster)")
    parser.add_argument("--frontier", action="store_true",
                        help="also replay perfect foresight (the replicas each minute needs at maxUtilization 0.8 "
                        "to 1.0, asked for a start-up ahead): the cost and SLO no live scaler can beat")
    parser.add_argument("--verbose", action="store_true", help="print every scale event")
    return parser.parse_args(argv)


def reshape(requests: list[Request], minutes: str | None = None, speed: float = 1.0,
            copies: int = 1) -> list[Request]:
    """The requests of ``minutes`` (FROM:TO, re-based to 0), ``speed`` times faster, overlaid ``copies`` times."""
    if minutes:
        lo, hi = (float(x) * 60 for x in minutes.split(":"))
        requests = [Request(r.arrival - lo, r.prompt_tokens, r.output_tokens) for r in requests if lo <= r.arrival < hi]
        if not requests:
            raise SystemExit(f"--minutes {minutes}: no requests in that range")
    if speed != 1.0:
        requests = [Request(r.arrival / speed, r.prompt_tokens, r.output_tokens) for r in requests]
    if copies > 1:
        span = requests[-1].arrival + 1e-6
        requests = sorted((Request((r.arrival + i * span / copies) % span, r.prompt_tokens, r.output_tokens)
                           for i in range(copies) for r in requests), key=lambda r: r.arrival)
    return requests


def tier_spec(args: argparse.Namespace) -> ModelTierSpec:
    scaling = {"minReplicas": 1, "maxReplicas": args.max_replicas or 64, "ttftSLOSeconds": args.ttft_slo}
    if args.max_utilization is not None:
        scaling["maxUtilization"] = args.max_utilization
    if args.scale_down_stabilization is not None:
        scaling["scaleDownStabilization"] = args.scale_down_stabilization
    if args.scale_down_cooldown is not None:
        scaling["scaleDownCooldown"] = args.scale_down_cooldown
    engine = {"maxNumBatchedTokens": args.max_num_batched_tokens} if args.max_num_batched_tokens else {}
    return ModelTierSpec.model_validate({
        "model": {"source": "hf://meta-llama/Llama-3.1-8B-Instruct", "parametersB": args.parameters_b},
        "quantization": {"weights": args.weights},
        "gpu": {"type": args.gpu, "count": args.gpu_count},
        "engine": engine,
        "scaling": scaling,
    })


def summary(result, window: float) -> dict:
    ttft = sorted(result.ttft)
    return {
        "cost_per_mtok": round(result.cost_per_million_tokens, 5),
        "slo_attainment": round(result.slo_attainment, 5),
        "ttft_p99_s": round(ttft[int(0.99 * (len(ttft) - 1))], 3),
        "mean_replicas": round(result.mean_replicas, 3),
        "scale_events": len(result.scale_events),
        "reversals": result.reversals(window),
    }


def sizes(requests, policy: ScalingPolicy) -> tuple[list[int], int, int]:
    """Replicas each minute needs at maxUtilization of the engine model's saturation throughput (the
    perfect-foresight oracle), the warm start of the autoscalers, and the static fleet (the peak)."""
    oracle = window_replicas(requests, policy.profile, policy.max_utilization, 60.0)
    return oracle, max(oracle[:WARM_MINUTES]), max(oracle)


def run_scalers(args, requests, model: FleetModel, scalers, window: float) -> dict[str, dict]:
    runs = {}
    for scaler, initial in scalers:
        t0 = time.monotonic()
        result = replay(requests, dataclasses.replace(model, initial_replicas=initial), scaler)
        runs[scaler.name] = summary(result, window)
        print(f"{scaler.name:16} {json.dumps(runs[scaler.name])} ({time.monotonic() - t0:.1f}s)", flush=True)
        if args.verbose:
            for t, a, b in result.scale_events:
                print(f"  {t:7.0f}s {a} -> {b}")
        if isinstance(scaler, PolicyScaler):
            print(f"  decisions by reason: {json.dumps(scaler.reasons, sort_keys=True)}")
    return runs


FRONTIER_UTILIZATIONS = (0.8, 0.85, 0.9, 0.95, 1.0)


def frontier(requests, model: FleetModel, policy: ScalingPolicy, floor: float) -> list[dict]:
    """Perfect foresight replayed at each of FRONTIER_UTILIZATIONS: cost against the floor, SLO met."""
    points = []
    for u in FRONTIER_UTILIZATIONS:
        needs = window_replicas(requests, policy.profile, u, 60.0)
        scaler = ForesightScaler(needs, lead=model.startup_seconds + model.decision_interval)
        result = replay(requests, dataclasses.replace(model, initial_replicas=needs[0]), scaler)
        points.append({"max_utilization": u, "cost_vs_floor": round(result.cost_per_million_tokens / floor, 3),
                       "slo_attainment": round(result.slo_attainment, 5), "mean_replicas": round(result.mean_replicas, 3)})
        print(f"foresight {u:.2f}   {json.dumps(points[-1])}", flush=True)
    return points


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    requests = reshape(load_trace(args.trace, args.limit), args.minutes, args.speed, args.copies)
    policy = ScalingPolicy.from_spec(tier_spec(args))
    oracle, first, peak = sizes(requests, policy)
    args.max_replicas = args.max_replicas or 2 * peak
    spec = tier_spec(args)
    policy = ScalingPolicy.from_spec(spec, **({"headroom": args.headroom} if args.headroom is not None else {}))
    tokens = sum(r.prompt_tokens + r.output_tokens for r in requests)
    model = FleetModel.for_tier(spec, startup_seconds=args.startup_seconds)
    window = policy.scale_down_stabilization
    started = time.monotonic()
    scalers = [(PolicyScaler(policy), first),
               (QueueThresholdScaler(args.queue_threshold, 1, args.max_replicas, window), first),
               (StaticScaler(peak), peak)]
    runs = run_scalers(args, requests, model, scalers[:1] if args.only_policy else scalers, window)
    if args.only_policy:
        return 0
    ours, queue, static = runs["tokenfleet"], runs["queue-threshold"], runs["static"]
    floor = floor_cost_per_million_tokens(requests, model)
    out = {
        "trace": Path(args.trace).name + (f" minutes {args.minutes}" if args.minutes else "")
        + (f" at {args.speed:g}x speed" if args.speed != 1.0 else "")
        + (f" x{args.copies} shifted copies" if args.copies > 1 else ""),
        "requests": len(requests),
        "tier": f"{args.parameters_b:g}B {args.weights} on {args.gpu_count}x {args.gpu}",
        "ttft_slo_s": args.ttft_slo,
        "max_replicas": args.max_replicas,
        "startup_s": args.startup_seconds,
        "cost_per_mtok": ours["cost_per_mtok"],
        "floor_cost_per_mtok": round(floor, 5),
        "ttft_slo_attainment": ours["slo_attainment"],
        "reversals": ours["reversals"],
        "mean_replicas": ours["mean_replicas"],
        "oracle_cost_per_mtok": round(sum(oracle) * 60 * policy.replica_hourly_usd / 3600 / tokens * 1e6, 5),
        "baseline_queue_cost_per_mtok": queue["cost_per_mtok"],
        "baseline_queue_slo_attainment": queue["slo_attainment"],
        "baseline_queue_reversals": queue["reversals"],
        "baseline_static_replicas": peak,
        "baseline_static_cost_per_mtok": static["cost_per_mtok"],
        "baseline_static_slo_attainment": static["slo_attainment"],
        "cost_vs_floor": round(ours["cost_per_mtok"] / floor, 3),
        "saving_vs_queue": round(1 - ours["cost_per_mtok"] / queue["cost_per_mtok"], 3),
    }
    if args.frontier:
        points = frontier(requests, model, policy, floor)
        met = [p for p in points if p["slo_attainment"] >= 0.99]
        out["foresight_frontier"] = points
        out["foresight_best_cost_vs_floor_at_99"] = min((p["cost_vs_floor"] for p in met), default=None)
    out["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
