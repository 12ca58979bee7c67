"""``tokenfleet plan``'s outputs: a text table, a JSON object and an HTML page with inline SVG charts."""

from __future__ import annotations

from html import escape

from tokenfleet.plan.charts import Series, bar_chart, line_chart
from tokenfleet.plan.model import BreakEven, Plan, Stage

LABELS = {"baseline": "baseline", "batching": "+ batching", "quantization": "+ quantization",
          "autoscaling": "+ autoscaling", "cascade": "+ cascade", "cache": "+ cache"}
SPLIT_COLORS = ("#4e79a7", "#f28e2b", "#bab0ac")


def _usd(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"


def savings(plan: Plan) -> list[tuple[Stage, float | None, float | None]]:
    """(stage, saving against the stage before in USD/month, as a share of it); None for the first."""
    out, before = [], None
    for stage in plan.stages:
        if before is None:
            out.append((stage, None, None))
        else:
            saved = before.monthly_usd - stage.monthly_usd
            out.append((stage, saved, saved / before.monthly_usd if before.monthly_usd else None))
        before = stage
    return out


def headline(plan: Plan, trace_name: str) -> list[str]:
    a = plan.assumptions
    rps = plan.requests / plan.period_seconds
    shares = ", ".join(f"{t.tier} {s:.0%}" for t, s in zip(plan.stages[-1].tiers, plan.tier_shares))
    return [
        f"tokenfleet plan: fleet {plan.fleet} on {trace_name}",
        f"  traffic: {plan.requests:,} requests over {plan.period_seconds / 60:.1f} min ({rps:.2f} req/s), "
        f"{plan.tokens / 1e6:.2f}M tokens; a month of it: {plan.monthly_requests / 1e6:.2f}M requests, "
        f"{plan.monthly_tokens / 1e9:.2f}B tokens",
        f"  assumptions: cache hit rate {plan.cache_hit_rate:.0%}; answered by {shares}; baseline batch "
        f"{a.baseline_max_num_seqs}; peak window {a.peak_window:g}s; replica start-up {a.startup_seconds:g}s; "
        f"vCPU ${a.cpu_hourly_usd:g}/h; {a.hours_per_month:g} h/month",
    ]


def stage_table(plan: Plan) -> list[str]:
    rows = [f"  {'lever':<16}{'USD/month':>12}{'$/1M tok':>10}{'saving':>20}{'vs baseline':>12}{'C_input':>10}"
            f"{'C_output':>10}{'C_infra':>10}{'TTFT SLO':>9}"]
    base = plan.stages[0].monthly_usd
    for stage, saved, share in savings(plan):
        slo = [t.slo_attainment for t in stage.tiers if t.slo_attainment is not None]
        saving = "" if saved is None else f"{_usd(saved)} ({share:.1%})"
        total = f"-{1 - stage.monthly_usd / base:.1%}" if saved is not None and base else ""
        rows.append(f"  {LABELS[stage.name]:<16}{_usd(stage.monthly_usd):>12}{plan.cost_per_million_tokens(stage):>10.4f}"
                    f"{saving:>20}{total:>12}{_usd(stage.c_input):>10}{_usd(stage.c_output):>10}"
                    f"{_usd(stage.c_infra):>10}{(f'{min(slo):.1%}' if slo else '-'):>9}")
    return rows


def tier_table(stage: Stage) -> list[str]:
    rows = [f"  {'tier':<16}{'requests':>9}{'replicas':>9}{'USD/month':>11}{'C_input':>10}{'C_output':>10}"
            f"{'C_infra':>10}  shape"]
    for t in stage.tiers:
        rows.append(f"  {t.tier:<16}{t.requests:>9,}{t.replicas:>9.2f}{_usd(t.monthly_usd):>11}{_usd(t.c_input):>10}"
                    f"{_usd(t.c_output):>10}{_usd(t.c_infra):>10}  {t.shape}")
    for name, monthly in stage.overhead:
        rows.append(f"  {name:<16}{'':>9}{'':>9}{_usd(monthly):>11}{'0':>10}{'0':>10}{_usd(monthly):>10}  CPU")
    return rows


def break_even_lines(be: BreakEven) -> list[str]:
    head = (f"  API at ${be.api_input_per_million:g} in / ${be.api_output_per_million:g} out per 1M tokens: "
            f"${_usd(be.api_monthly_usd)}/month for this traffic ({be.requests_per_day:,.0f} requests/day); "
            f"self-hosted ${_usd(be.self_monthly_usd)}/month, of which ${_usd(be.floor_monthly_usd)} with no traffic")
    if be.break_even_requests_per_day is None:
        return [head, "  break-even: none; the API is cheaper per request than this fleet at this volume"]
    return [head, f"  break-even: {be.break_even_requests_per_day:,.0f} requests/day; above it self-hosting "
                  f"is cheaper"]


def text(plan: Plan, trace_name: str, be: BreakEven | None = None) -> str:
    lines = headline(plan, trace_name) + ["", *stage_table(plan), "", f"  per tier, {LABELS[plan.stages[-1].name]} "
                                          f"(the fleet as written):", *tier_table(plan.stages[-1])]
    if be is not None:
        lines += ["", *break_even_lines(be)]
    return "\n".join(lines)


def to_dict(plan: Plan, be: BreakEven | None = None) -> dict:
    stages = []
    for stage, saved, share in savings(plan):
        stages.append({
            "stage": stage.name, "description": stage.description, "monthly_usd": stage.monthly_usd,
            "cost_per_mtok": plan.cost_per_million_tokens(stage), "saving_usd": saved, "saving_share": share,
            "c_input": stage.c_input, "c_output": stage.c_output, "c_infra": stage.c_infra,
            "tiers": [t.__dict__ for t in stage.tiers], "overhead": dict(stage.overhead),
        })
    out = {"fleet": plan.fleet, "requests": plan.requests, "period_seconds": plan.period_seconds,
           "tokens": plan.tokens, "monthly_requests": plan.monthly_requests, "monthly_tokens": plan.monthly_tokens,
           "cache_hit_rate": plan.cache_hit_rate, "tier_shares": list(plan.tier_shares), "stages": stages}
    if be is not None:
        out["break_even"] = {**be.__dict__}
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _split_chart(stages: list[Stage], title: str) -> str:
    cats = [LABELS[s.name] for s in stages]
    series = [Series(n, tuple(getattr(s, k) for s in stages), c)
              for n, k, c in (("C_input", "c_input", SPLIT_COLORS[0]), ("C_output", "c_output", SPLIT_COLORS[1]),
                              ("C_infra", "c_infra", SPLIT_COLORS[2]))]
    return bar_chart(cats, series, title, "USD per month")


def _break_even_chart(be: BreakEven) -> str:
    top = max(be.requests_per_day, be.break_even_requests_per_day or 0.0) * 4
    volumes = [top / 10 ** (k / 4) for k in range(16, -1, -1)]
    return line_chart([Series("self-hosted", tuple((v, be.self_cost(v)) for v in volumes)),
                       Series("API", tuple((v, be.api_cost(v)) for v in volumes))],
                      "Self-hosting against the API", "requests per day", "USD per month", log=True)


def html(plan: Plan, trace_name: str, be: BreakEven | None = None) -> str:
    stage_rows = [[LABELS[s.name], s.description, _usd(s.monthly_usd), f"{plan.cost_per_million_tokens(s):.4f}",
                   "" if saved is None else f"{_usd(saved)} ({share:.1%})", _usd(s.c_input), _usd(s.c_output),
                   _usd(s.c_infra)] for s, saved, share in savings(plan)]
    last = plan.stages[-1]
    tier_rows = [[t.tier, t.shape, f"{t.requests:,}", f"{t.replicas:.2f}", _usd(t.monthly_usd), _usd(t.c_input),
                  _usd(t.c_output), _usd(t.c_infra)] for t in last.tiers]
    tier_rows += [[n, "CPU", "", "", _usd(v), "0", "0", _usd(v)] for n, v in last.overhead]
    parts = [
        f"<h1>tokenfleet plan: {escape(plan.fleet)}</h1>",
        "".join(f"<p>{escape(line.strip())}</p>" for line in headline(plan, trace_name)[1:]),
        "<h2>Each lever against the stage before</h2>",
        _split_chart(list(plan.stages), "Monthly cost by lever"),
        "<p>The same from + batching on (where any vLLM deployment starts):</p>",
        _split_chart(list(plan.stages[1:]), "Monthly cost by lever, from + batching on"),
        _table(["lever", "what changes", "USD/month", "$/1M tokens", "saving", "C_input", "C_output", "C_infra"],
               stage_rows),
        "<h2>The fleet as written, per tier</h2>",
        _table(["tier", "shape", "requests", "replicas", "USD/month", "C_input", "C_output", "C_infra"], tier_rows),
    ]
    if be is not None:
        parts += ["<h2>Self-hosting against an API</h2>", _break_even_chart(be),
                  "".join(f"<p>{escape(line.strip())}</p>" for line in break_even_lines(be))]
    parts.append("<p>C_input and C_output: the tokens at the tier's saturation prices (perfectly packed GPUs); "
                 "C_infra: the rest of the bill (idle and reserve capacity, start-ups, router and cache CPUs). "
                 "See docs/cost-model.md.</p>")
    return page(f"tokenfleet plan: {plan.fleet}", "".join(parts))


def page(title: str, body: str) -> str:
    """A self-contained HTML page (no scripts, no external resources)."""
    style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "td:first-child,th:first-child,td:nth-child(2){text-align:left}svg{margin:1em 0}")
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")
