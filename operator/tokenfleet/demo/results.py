"""Pure: what a demo run measured, and the baseline for the same requests (``tokenfleet.replay``).

The fleet's cost is what its pods would have cost while the traffic ran: each engine pod at its
ModelTier's GPU price from creation until it stopped (a pod is billed while it starts, as a node
is), the router and cache pods at their CPU requests. Tokens are the clients' (prompt plus
completion of every answered request, cache hits included), so that fleet and baseline are
divided by the same number. The baseline replays the very same requests (arrival, prompt and
completion tokens) on the fleet's largest tier, static, sized for the busiest ``PEAK_WINDOW``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tokenfleet.api.v1alpha1 import InferenceFleetSpec, ModelTierSpec
from tokenfleet.perf import profile_for_tier
from tokenfleet.plan.model import CPU_HOURLY_USD, static_replicas
from tokenfleet.plan.stages import cpu_cores
from tokenfleet.replay import FleetModel, Request, replay
from tokenfleet.scalers import StaticScaler

PEAK_WINDOW = 10.0  # seconds: the demo is short, so its peak is judged over shorter windows than plan's
CACHE_KINDS = ("local", "exact", "semantic", "coalesced")


@dataclass(frozen=True)
class PodCost:
    """The bill of one Deployment over the traffic window."""

    deployment: str
    kind: str  # engine, router, cache
    hourly_usd: float  # one pod
    pod_seconds: float
    cost_usd: float


@dataclass
class DemoRun:
    """Everything the summary and the report show."""

    seconds: float
    requests: int
    answered: int
    tokens: int
    fleet_cost_usd: float
    baseline_cost_usd: float
    baseline_desc: str
    baseline_slo: float
    pods: list[PodCost]
    tiers: list[str]
    cache_hits: dict[str, int]  # by cache kind
    by_kind: dict[str, tuple[int, int]]  # request kind -> (answered, cache hits)
    answered_by: dict[str, int]  # tier -> answers from that tier
    escalations: dict[tuple[str, str], int]  # (from, to) -> count (router metrics)
    lookups: dict[str, int]  # router's cache lookups by result: hit_local, hit_exact, hit_semantic, miss, error
    token_split: dict[str, tuple[float, float]]  # tier -> (C_input, C_output) in USD (router metrics)
    timeline: dict[str, list[tuple[float, int, int]]]  # deployment -> (t, desired, ready)
    rate: list[tuple[float, int, int]]  # (second, requests sent, cache hits)
    latency: dict[str, tuple[float, float, int]]  # "all", "cache" or a tier -> (p50, p95, count) of whole answers
    ttft: tuple[float, float, int]  # streamed requests: (p50, p95, count) of the time to the first token
    after_answer: dict[str, tuple[int, int]]  # repeat/rephrase sent after an earlier ask came back -> (n, hits)
    notes: list[str] = field(default_factory=list)

    @property
    def fleet_per_mtok(self) -> float:
        return self.fleet_cost_usd / self.tokens * 1e6 if self.tokens else math.nan

    @property
    def baseline_per_mtok(self) -> float:
        return self.baseline_cost_usd / self.tokens * 1e6 if self.tokens else math.nan

    @property
    def routed(self) -> int:
        return sum(self.answered_by.values())

    @property
    def escalation_rate(self) -> float:
        escalated = sum(n for t, n in self.answered_by.items() if t != self.tiers[0])
        return escalated / self.routed if self.routed else 0.0


def overlap(start: float, end: float | None, lo: float, hi: float) -> float:
    """Seconds of [start, end] (end None: still running) inside [lo, hi]."""
    end = hi if end is None else end
    return max(0.0, min(end, hi) - max(start, lo))


def pod_costs(lifetimes: list[tuple[str, float, float | None]], deployments: dict[str, dict],
              tiers: dict[str, ModelTierSpec], lo: float, hi: float, cpu_hourly: float) -> list[PodCost]:
    """Cost per Deployment from pod lifetimes ``(deployment, created, stopped)`` clipped to [lo, hi]."""
    out = []
    for name, dep in sorted(deployments.items()):
        labels = dep["metadata"].get("labels") or {}
        tier = labels.get("tokenfleet.io/modeltier")
        if tier in tiers:
            kind, hourly = "engine", profile_for_tier(tiers[tier]).hourly_usd
        else:
            kind = labels.get("app.kubernetes.io/component", "other")
            containers = dep["spec"]["template"]["spec"]["containers"]
            cpu = ((containers[0].get("resources") or {}).get("requests") or {}).get("cpu", "0")
            hourly = cpu_cores(cpu) * cpu_hourly
        seconds = sum(overlap(c, s, lo, hi) for d, c, s in lifetimes if d == name)
        out.append(PodCost(name, kind, hourly, seconds, seconds * hourly / 3600.0))
    return out


def baseline(requests: list[Request], spec: ModelTierSpec, window: float = PEAK_WINDOW):
    """(replicas, ReplayResult) of the largest tier, static for the busiest window, on ``requests``."""
    profile = profile_for_tier(spec)
    n = static_replicas(requests, profile, spec.scaling.max_utilization, window)
    model = FleetModel.for_tier(spec, initial_replicas=n)
    return n, replay(requests, model, StaticScaler(n))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def answered_earlier(outcomes) -> dict[int, bool]:
    """For each first-turn request: whether an earlier first turn with the same question had its answer back.

    Only then can a cache answer it; before, the question is still being answered (a rephrasing
    cannot share the identical request's upstream call, as a repeat can by coalescing).
    """
    done: dict[str, list[float]] = {}
    for o in outcomes:
        if o.ok and o.kind != "followup":
            done.setdefault(o.question, []).append(o.done)
    return {o.index: any(t <= o.sent for t in done.get(o.question, ())) for o in outcomes if o.kind != "followup"}


def _latency(values: list[float]) -> tuple[float, float, int]:
    return percentile(values, 0.5), percentile(values, 0.95), len(values)


def traffic_figures(outcomes, tiers: list[str]) -> dict:
    """Cache hits by kind, hits by request kind, answers by tier, per-second rate, latency percentiles."""
    ok = [o for o in outcomes if o.ok]
    hit = [o.cache in CACHE_KINDS for o in ok]
    hits = {k: sum(1 for o in ok if o.cache == k) for k in CACHE_KINDS}
    kinds = sorted({o.kind for o in outcomes})
    by_kind = {k: (sum(1 for o in ok if o.kind == k), sum(1 for o, h in zip(ok, hit) if o.kind == k and h))
               for k in kinds}
    earlier = answered_earlier(ok)
    after = {k: (sum(1 for o in ok if o.kind == k and earlier[o.index]),
                 sum(1 for o, h in zip(ok, hit) if o.kind == k and h and earlier[o.index]))
             for k in ("repeat", "rephrase") if k in kinds}
    answered_by = {t: sum(1 for o, h in zip(ok, hit) if o.tier == t and not h) for t in tiers}
    seconds = int(max((o.at for o in outcomes), default=0)) + 1
    rate = [(s, sum(1 for o in outcomes if int(o.at) == s), sum(1 for o, h in zip(ok, hit) if int(o.at) == s and h))
            for s in range(seconds)]
    latency = {"all": _latency([o.latency for o in ok]),
               "cache": _latency([o.latency for o, h in zip(ok, hit) if h])}
    latency.update({t: _latency([o.latency for o, h in zip(ok, hit) if o.tier == t and not h]) for t in tiers})
    ttft = _latency([o.ttft for o in ok if o.stream and o.ttft is not None])
    return {"cache_hits": hits, "by_kind": by_kind, "after_answer": after, "answered_by": answered_by,
            "rate": rate, "latency": latency, "ttft": ttft}


def router_counters(text: str) -> tuple[dict[tuple[str, str], int], dict[str, tuple[float, float]], dict[str, int]]:
    """(escalations by (from, to), (input, output) tokens by tier, cache lookups by result) from /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    escalations: dict[tuple[str, str], int] = {}
    tokens: dict[str, list[float]] = {}
    lookups: dict[str, int] = {}
    for family in text_string_to_metric_families(text or ""):
        for sample in family.samples:
            if sample.name == "tokenfleet_router_cache_lookups_total":
                result = sample.labels.get("result", "")
                lookups[result] = lookups.get(result, 0) + int(sample.value)
            elif sample.name == "tokenfleet_router_escalations_total":
                key = (sample.labels.get("from_tier", ""), sample.labels.get("to_tier", ""))
                escalations[key] = escalations.get(key, 0) + int(sample.value)
            elif sample.name == "tokenfleet_router_tokens_total":
                pair = tokens.setdefault(sample.labels.get("tier", ""), [0.0, 0.0])
                pair[0 if sample.labels.get("direction") == "input" else 1] += sample.value
    return escalations, {t: (v[0], v[1]) for t, v in tokens.items()}, lookups


def token_split(tokens: dict[str, tuple[float, float]], tiers: dict[str, ModelTierSpec]) -> dict[str, tuple[float, float]]:
    """(C_input, C_output) in USD per tier: its billed tokens at the tier's saturation prices (perf.token_prices)."""
    from tokenfleet.perf import token_prices

    out = {}
    for name, spec in tiers.items():
        p_in, p_out = token_prices(profile_for_tier(spec))
        t_in, t_out = tokens.get(name, (0.0, 0.0))
        out[name] = (t_in * p_in / 1e6, t_out * p_out / 1e6)
    return out


def parse_docs(docs: list[dict]) -> tuple[list[str], dict[str, ModelTierSpec]]:
    """The fleet's tier names in order and every ModelTier's spec."""
    fleet = next(d for d in docs if d["kind"] == "InferenceFleet")
    order = InferenceFleetSpec.model_validate(fleet["spec"]).tiers
    specs = {d["metadata"]["name"]: ModelTierSpec.model_validate(d["spec"]) for d in docs if d["kind"] == "ModelTier"}
    return list(order), specs


def timeline(samples, lo: float, hi: float) -> dict[str, list[tuple[float, int, int]]]:
    """Per Deployment, (seconds since the traffic began, desired, ready), clipped to the window."""
    out: dict[str, list[tuple[float, int, int]]] = {}
    for s in samples:
        series = out.setdefault(s.deployment, [])
        t = min(max(s.t - lo, 0.0), hi - lo)
        if series and series[-1][0] == t:
            series[-1] = (t, s.desired, s.ready)
        else:
            series.append((t, s.desired, s.ready))
    for series in out.values():
        series.append((hi - lo, series[-1][1], series[-1][2]))
    return out


def measure(outcomes, kubelet, docs: list[dict], lo: float, hi: float, cpu_hourly: float = CPU_HOURLY_USD,
            router_metrics: str = "") -> DemoRun:
    """The run's figures; ``lo``/``hi`` bound the traffic on the kubelet's clock."""
    order, specs = parse_docs(docs)
    lifetimes = [(x.deployment, x.created, x.stopped) for x in kubelet.lifetimes]
    lifetimes += [(p.deployment, p.created - kubelet.t0, None) for p in kubelet.pods.values()]
    pods = pod_costs(lifetimes, kubelet.deployments, specs, lo, hi, cpu_hourly)
    ok = sorted((o for o in outcomes if o.ok), key=lambda o: o.sent)
    requests = [Request(o.sent, max(1, o.prompt_tokens), max(1, o.completion_tokens)) for o in ok]
    large = order[-1]
    n, base = baseline(requests, specs[large]) if requests else (0, None)
    escalations, tokens, lookups = router_counters(router_metrics)
    figures = traffic_figures(outcomes, order)
    return DemoRun(
        seconds=hi - lo, requests=len(outcomes), answered=len(ok), tokens=sum(o.tokens for o in ok),
        fleet_cost_usd=sum(p.cost_usd for p in pods), baseline_cost_usd=base.cost_usd if base else 0.0,
        baseline_desc=f"{large} static x{n}, no cache", baseline_slo=base.slo_attainment if base else math.nan,
        pods=pods, tiers=order, escalations=escalations, token_split=token_split(tokens, specs), lookups=lookups,
        timeline=timeline(kubelet.timeline, lo, hi), notes=list(kubelet.problems), **figures)


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def progress_line(outcomes, elapsed: float, kubelet, first_tier: str) -> str:
    """One line while the traffic runs: requests so far, cache and escalation shares, replicas per tier."""
    done = [o for o in outcomes if o.done]
    ok = [o for o in done if o.ok]
    hits = sum(1 for o in ok if o.cache in CACHE_KINDS)
    routed = [o for o in ok if o.cache not in CACHE_KINDS]
    escalated = sum(1 for o in routed if o.tier and o.tier != first_tier)
    replicas = " ".join(f"{name.removesuffix('-engine')} {ready}/{desired}"
                        for name, desired, ready in kubelet_replicas(kubelet))
    return (f"t={elapsed:4.0f}s sent {sum(1 for o in outcomes if o.sent):>4}/{len(outcomes)}, answered {len(ok)}"
            f" (failed {len(done) - len(ok)}), cache hits {_share(hits, len(ok))}, escalated "
            f"{_share(escalated, len(routed))} | replicas ready/desired: {replicas}")


def kubelet_replicas(kubelet) -> list[tuple[str, int, int]]:
    out = []
    for name, dep in kubelet.deployments.items():
        if name.endswith("-engine"):
            ready = sum(1 for p in kubelet.pods.values() if p.deployment == name and p.ready)
            out.append((name, int(dep["spec"].get("replicas", 1)), ready))
    return out


def replica_story(series: list[tuple[float, int, int]]) -> str:
    """'1 -> 2 (t=18s) -> 1 (t=35s)': the desired replicas and when they changed."""
    if not series:
        return "-"
    parts, last = [str(series[0][1])], series[0][1]
    for t, desired, _ in series[1:]:
        if desired != last:
            parts.append(f"{desired} (t={t:.0f}s)")
            last = desired
    return " -> ".join(parts)


def _cost_lines(run: DemoRun) -> list[str]:
    less = 1 - run.fleet_per_mtok / run.baseline_per_mtok if run.baseline_per_mtok else math.nan
    gpu = sum(p.cost_usd for p in run.pods if p.kind == "engine")
    c_in = sum(v[0] for v in run.token_split.values())
    c_out = sum(v[1] for v in run.token_split.values())
    return [
        f"cost per 1M tokens  tokenfleet ${run.fleet_per_mtok:.4f}  vs  baseline ${run.baseline_per_mtok:.4f} "
        f"({run.baseline_desc}): {less:.0%} less",
        f"  tokenfleet: its pods' lifetimes x their prices, ${run.fleet_cost_usd:.4f} for {run.tokens:,} tokens; "
        f"GPUs ${gpu:.4f} = C_input ${c_in:.4f} + C_output ${c_out:.4f} + C_infra ${gpu - c_in - c_out:.4f} (idle, "
        f"starting or spare capacity); router and cache CPUs ${run.fleet_cost_usd - gpu:.4f}",
        f"  baseline: the same requests replayed through the engine model, ${run.baseline_cost_usd:.4f} "
        f"(TTFT SLO met by {run.baseline_slo:.0%})",
    ]


def _cache_lines(run: DemoRun) -> list[str]:
    ok = run.answered
    names = {"local": "router's own copy", "exact": "cache service exact", "semantic": "cache service semantic",
             "coalesced": "shared an identical request's upstream call"}
    kinds = ", ".join(f"{k} {h}/{n}" + (f" ({h / n:.0%})" if n else "") for k, (n, h) in run.by_kind.items())
    after = ", ".join(f"{k} {h}/{n}" + (f" ({h / n:.0%})" if n else "") for k, (n, h) in run.after_answer.items())
    lookups = ", ".join(f"{k} {v}" for k, v in sorted(run.lookups.items())) or "none"
    return [
        f"cache hits      {_share(sum(run.cache_hits.values()), ok)} of answers: "
        + ", ".join(f"{names[k]} {_share(v, ok)}" for k, v in run.cache_hits.items()),
        f"  by request kind: {kinds} (new questions and follow-ups sampled at temperature 0.7 are never cached)",
        f"  sent after an earlier ask of the same question had been answered: {after or 'none'}; the others came "
        "while it was still being generated",
        f"  router cache lookups: {lookups}" + (" (error: the cache service did not answer within the router's "
                                                 "timeout; the request went on)" if run.lookups.get("error") else ""),
    ]


def _latency_lines(run: DemoRun) -> list[str]:
    lat = run.latency
    where = [f"cache {lat['cache'][1]:.2f}s"] if lat.get("cache", (0, 0, 0))[2] else []
    where += [f"{t} {lat[t][1]:.2f}s" for t in run.tiers if lat.get(t, (0, 0, 0))[2]]
    p50, p95, n = run.ttft
    return [
        f"answer time     whole answers: p50 {lat['all'][0]:.2f}s, p95 {lat['all'][1]:.2f}s; p95 by where answered: "
        + ", ".join(where) + " (an escalated answer includes the cheaper tiers' tries)",
        f"first token     streamed requests ({n}): p50 {p50:.2f}s, p95 {p95:.2f}s" if n else
        "first token     no streamed request",
    ]


def summary_lines(run: DemoRun, trace_note: str = "") -> list[str]:
    """The summary printed at the end of the demo."""
    esc = ", ".join(f"{a} -> {b} {n}" for (a, b), n in sorted(run.escalations.items())) or "none"
    lines = [
        "",
        "== tokenfleet demo: summary ==",
        f"requests        {run.requests} sent, {run.answered} answered in {run.seconds:.1f}s{trace_note}",
        *_cost_lines(run),
        *_cache_lines(run),
        f"escalations     {run.escalation_rate:.0%} of the {run.routed} answers from a model came from a tier above "
        f"{run.tiers[0]} (router: {esc})",
        "answered by     " + ", ".join(f"{t} {n}" for t, n in run.answered_by.items()),
        "replicas        " + "; ".join(f"{name.removesuffix('-engine')} {replica_story(series)}"
                                       for name, series in sorted(run.timeline.items()) if name.endswith("-engine")),
        *_latency_lines(run),
    ]
    lines += [f"note: {n.splitlines()[0]}" for n in run.notes]
    return lines
