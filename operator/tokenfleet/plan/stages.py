"""The stages of ``tokenfleet plan``'s waterfall, each a monthly bill per tier (see ``plan.model``)."""

from __future__ import annotations

from dataclasses import replace

from tokenfleet.api.v1alpha1 import CachePolicySpec, ModelTierSpec
from tokenfleet.autoscaling import ScalingPolicy
from tokenfleet.gpus import GPU_TYPES, estimate_memory_fit
from tokenfleet.perf import EngineProfile, default_batch_limits, profile_for_tier, token_prices
from tokenfleet.plan.model import (DEFAULT_CACHE_HIT_RATE, Assumptions, FleetInput, Plan, Stage, TierBill,
                                   assign_tiers, default_shares, serial_replicas, split_cache, static_replicas,
                                   trace_period, windows)
from tokenfleet.render import Settings
from tokenfleet.replay import FleetModel, Request, replay
from tokenfleet.scalers import PolicyScaler, StaticScaler


class PlanError(ValueError):
    """Inputs ``plan`` cannot work with; the message says which."""


def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity ("500m", "1", "1.5") in cores."""
    quantity = str(quantity)
    return float(quantity[:-1]) / 1000.0 if quantity.endswith("m") else float(quantity)


def unquantized(spec: ModelTierSpec) -> ModelTierSpec:
    """The tier at 16-bit weights and KV cache, on the fewest GPUs (doubling the count) that hold it."""
    data = spec.model_dump(by_alias=True, exclude_none=True)
    data["quantization"] = {"weights": "none", "kvCache": "auto"}
    out = ModelTierSpec.model_validate(data)
    gpu = GPU_TYPES.get(out.gpu.type)
    memory = out.gpu.memory_gib or (gpu.memory_gib if gpu else 24.0)
    count = out.gpu.count
    while count < 16 and not estimate_memory_fit(
            parameters_b=out.model.parameters_b, weights="none", kv_cache="auto",
            max_model_len=out.model.max_model_len, gpu_memory_gib=memory, gpu_count=count,
            gpu_memory_utilization=out.engine.gpu_memory_utilization).fits:
        count *= 2
    data["gpu"] = {**data["gpu"], "count": min(count, 16)}
    return ModelTierSpec.model_validate(data)


def shape(spec: ModelTierSpec, how: str) -> str:
    q = spec.quantization.weights if spec.quantization.weights != "none" else "16-bit"
    return f"{spec.model.parameters_b:g}B {q} on {spec.gpu.count}x {spec.gpu.type}, {how}"


def bill(name: str, spec: ModelTierSpec, profile: EngineProfile, requests: list[Request], replicas: float,
         a: Assumptions, month_factor: float, how: str, slo: float | None = None) -> TierBill:
    """A tier's monthly bill: ``replicas`` on average, its tokens priced at saturation, the rest infra."""
    monthly = replicas * profile.hourly_usd * a.hours_per_month
    prompt = sum(r.prompt_tokens for r in requests)
    output = sum(r.output_tokens for r in requests)
    c_in = c_out = 0.0
    if requests:
        p_in, p_out = token_prices(profile, prompt / len(requests), output / len(requests))
        c_in, c_out = prompt * month_factor * p_in / 1e6, output * month_factor * p_out / 1e6
    return TierBill(name, shape(spec, how), len(requests), replicas, monthly, c_in, c_out,
                    monthly - c_in - c_out, slo)


def static_bill(name: str, spec: ModelTierSpec, requests: list[Request], a: Assumptions, month_factor: float,
                max_num_seqs: int | None = None) -> TierBill:
    """A static fleet sized for the busiest window, replayed for its TTFT; ``max_num_seqs`` 1 = no batching.

    Without batching there is no replay (a lone sequence per replica makes it millions of steps):
    the replicas follow from the requests' serial service times and TTFT is not estimated.
    """
    profile = profile_for_tier(spec)
    utilization = spec.scaling.max_utilization
    if max_num_seqs == 1:
        budget = spec.engine.max_num_batched_tokens or default_batch_limits(spec.gpu.type, spec.gpu.memory_gib)[1]
        n = serial_replicas(requests, profile, utilization, budget, a.peak_window)
        return bill(name, spec, replace(profile, max_num_seqs=1), requests, n, a, month_factor,
                    f"static {n}, one request at a time")
    if max_num_seqs is not None:
        profile = replace(profile, max_num_seqs=max_num_seqs)
    n = static_replicas(requests, profile, utilization, a.peak_window)
    model = FleetModel.for_tier(spec, profile=profile, startup_seconds=a.startup_seconds, initial_replicas=n)
    result = replay(requests, model, StaticScaler(n))
    return bill(name, spec, profile, requests, n, a, month_factor, f"static {n}", result.slo_attainment)


def autoscaled_bill(name: str, spec: ModelTierSpec, requests: list[Request], a: Assumptions,
                    month_factor: float) -> TierBill:
    """Replay the tier's requests through tokenfleet's policy and the engine model."""
    profile = profile_for_tier(spec)
    s = spec.scaling
    if not requests:
        floor = spec.replicas if spec.replicas is not None else s.min_replicas
        return bill(name, spec, profile, [], floor, a, month_factor, "no traffic")
    first = windows(requests, a.peak_window)[0]
    start = static_replicas(first, profile, s.max_utilization, a.peak_window)
    if spec.replicas is not None:
        scaler, start, how = StaticScaler(spec.replicas), spec.replicas, f"pinned at {spec.replicas}"
    else:
        scaler, how = PolicyScaler(ScalingPolicy.from_spec(spec)), "autoscaled"
        start = min(max(start, s.min_replicas, 1), max(s.max_replicas, 1))
    model = FleetModel.for_tier(spec, startup_seconds=a.startup_seconds, initial_replicas=start)
    result = replay(requests, model, scaler)
    return bill(name, spec, profile, requests, result.mean_replicas, a, month_factor,
                f"{how}, {result.mean_replicas:.2f} on average", result.slo_attainment)


def overhead(fleet: FleetInput, a: Assumptions, with_cache: bool) -> tuple[tuple[str, float], ...]:
    """Monthly CPU cost of the router (and the cache service) at their CPU requests."""
    settings = Settings()
    router = cpu_cores(settings.router_resources["requests"]["cpu"]) * fleet.fleet.replicas
    items = [("router", router * a.cpu_hourly_usd * a.hours_per_month)]
    if with_cache:  # a fleet without a CachePolicy priced with a default one (one replica)
        replicas = (fleet.cache or CachePolicySpec()).replicas
        items.append(("cache", cpu_cores(settings.cache_cpu) * replicas * a.cpu_hourly_usd * a.hours_per_month))
    return tuple(items)


def cascade_bills(fleet: FleetInput, requests: list[Request], shares: tuple[float, ...], a: Assumptions,
                  month_factor: float) -> tuple[TierBill, ...]:
    """Every tier autoscaled on the requests that reach it (answered there or escalated past it)."""
    answered = assign_tiers(requests, shares, a.seed)
    bills = []
    for i, (name, spec) in enumerate(fleet.tiers):
        reaching = [r for r, t in zip(requests, answered) if t >= i]
        bills.append(autoscaled_bill(name, spec, reaching, a, month_factor))
    return tuple(bills)


def resolve_shares(fleet: FleetInput, a: Assumptions) -> tuple[float, ...]:
    n = len(fleet.tiers)
    shares = a.tier_shares if a.tier_shares is not None else default_shares(n, a.small_tier_share)
    if len(shares) != n:
        raise PlanError(f"--tier-shares has {len(shares)} values; the fleet has {n} tiers")
    if any(s < 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-6:
        raise PlanError(f"--tier-shares must be >= 0 and sum to 1: {shares}")
    return tuple(shares)


def check(a: Assumptions) -> None:
    """PlanError naming the flag of the first assumption out of range."""
    rules = [(a.baseline_max_num_seqs >= 1, "--baseline-batch must be at least 1"),
             (a.peak_window > 0, "--peak-window must be > 0"),
             (a.startup_seconds >= 0, "--startup-seconds must be >= 0"),
             (a.cpu_hourly_usd >= 0, "--cpu-hourly-usd must be >= 0"),
             (a.hours_per_month > 0, "--hours-per-month must be > 0"),
             (0 < a.small_tier_share <= 1, "--small-tier-share must be in (0, 1]")]
    for ok, message in rules:
        if not ok:
            raise PlanError(message)


def build_plan(fleet: FleetInput, requests: list[Request], a: Assumptions = Assumptions()) -> Plan:
    """Every stage of the waterfall for ``fleet`` on ``requests`` (see plan.model)."""
    if not requests:
        raise PlanError("the trace has no requests")
    check(a)
    shares = resolve_shares(fleet, a)
    hit = a.cache_hit_rate if a.cache_hit_rate is not None else (
        DEFAULT_CACHE_HIT_RATE if fleet.cache is not None else 0.0)
    if not 0.0 <= hit < 1.0:
        raise PlanError(f"--cache-hit-rate must be in [0, 1): {hit}")
    try:
        period = trace_period(requests)
    except ValueError as err:
        raise PlanError(str(err)) from None
    month = a.hours_per_month * 3600.0 / period
    large_name, large = fleet.tiers[-1]
    plain = unquantized(large)
    stages = [
        Stage("baseline", f"{large_name} at 16-bit, no batching, static for the peak, no cache",
              (static_bill(large_name, plain, requests, a, month, max_num_seqs=a.baseline_max_num_seqs),)),
        Stage("batching", "continuous batching (vLLM) at the tier's maxNumSeqs",
              (static_bill(large_name, plain, requests, a, month),)),
        Stage("quantization", f"the tier's precision: {large.quantization.weights} weights, "
              f"{large.quantization.kv_cache} KV cache", (static_bill(large_name, large, requests, a, month),)),
        Stage("autoscaling", "replicas follow the load (tokenfleet's policy, replayed)",
              (autoscaled_bill(large_name, large, requests, a, month),)),
        Stage("cascade", "cheapest tier first, escalating: " + ", ".join(
            f"{n} answers {s:.0%}" for (n, _), s in zip(fleet.tiers, shares)),
              cascade_bills(fleet, requests, shares, a, month), overhead(fleet, a, with_cache=False)),
    ]
    if hit > 0:
        misses = split_cache(requests, hit, a.seed)
        stages.append(Stage("cache", f"{hit:.0%} of requests answered from the cache",
                            cascade_bills(fleet, misses, shares, a, month), overhead(fleet, a, with_cache=True)))
    prompt = sum(r.prompt_tokens for r in requests)
    tokens = prompt + sum(r.output_tokens for r in requests)
    return Plan(fleet.name, len(requests), period, tokens, prompt, len(requests) * month, tokens * month,
                tuple(stages), a, hit, shares)


def floor_monthly(fleet: FleetInput, plan: Plan) -> float:
    """What the fleet (the plan's last stage) costs with no traffic: pinned or minimum replicas, router, cache."""
    hours = plan.assumptions.hours_per_month
    gpus = sum((spec.replicas if spec.replicas is not None else spec.scaling.min_replicas)
               * profile_for_tier(spec).hourly_usd * hours for _, spec in fleet.tiers)
    return gpus + sum(v for _, v in plan.stages[-1].overhead)
