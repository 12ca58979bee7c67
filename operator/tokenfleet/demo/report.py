"""The demo's HTML report: the summary, and inline SVG charts of cost, traffic and replicas."""

from __future__ import annotations

from html import escape

from tokenfleet.demo.results import CACHE_KINDS, DemoRun, summary_lines
from tokenfleet.plan.charts import Series, bar_chart, line_chart
from tokenfleet.plan.report import page


def cost_chart(run: DemoRun) -> str:
    return bar_chart(["tokenfleet", "baseline"], [Series("USD per 1M tokens", (run.fleet_per_mtok,
                                                                              run.baseline_per_mtok))],
                     "Cost per 1M tokens", "USD per 1M tokens")


def traffic_chart(run: DemoRun) -> str:
    sent = Series("requests sent per second", tuple((float(s), float(n)) for s, n, _ in run.rate))
    hits = Series("answered from cache", tuple((float(s), float(h)) for s, _, h in run.rate))
    return line_chart([sent, hits], "Traffic", "seconds since the traffic began", "requests per second")


def replica_chart(run: DemoRun) -> str:
    series = [Series(name.removesuffix("-engine") + " (desired)", tuple((t, float(d)) for t, d, _ in points),
                     step=True)
              for name, points in sorted(run.timeline.items()) if name.endswith("-engine")]
    return line_chart(series, "Engine replicas", "seconds since the traffic began", "replicas", counts=True)


def cache_table(run: DemoRun) -> str:
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{run.cache_hits.get(k, 0)}</td></tr>" for k in CACHE_KINDS)
    kinds = "".join(f"<tr><td>{escape(k)}</td><td>{n}</td><td>{h}</td><td>{(h / n if n else 0):.0%}</td></tr>"
                    for k, (n, h) in run.by_kind.items())
    return (f"<table><thead><tr><th>cache kind</th><th>hits</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<table><thead><tr><th>request kind</th><th>answered</th><th>cache hits</th><th>hit rate</th></tr>"
            f"</thead><tbody>{kinds}</tbody></table>")


def pods_table(run: DemoRun) -> str:
    rows = "".join(f"<tr><td>{escape(p.deployment)}</td><td>{escape(p.kind)}</td><td>{p.hourly_usd:.3f}</td>"
                   f"<td>{p.pod_seconds:.1f}</td><td>{p.cost_usd:.5f}</td></tr>" for p in run.pods)
    return ("<table><thead><tr><th>deployment</th><th>kind</th><th>USD/h per pod</th><th>pod-seconds</th>"
            f"<th>USD</th></tr></thead><tbody>{rows}</tbody></table>")


def render(run: DemoRun, trace_note: str = "") -> str:
    summary = "\n".join(summary_lines(run, trace_note)).strip()
    body = (
        "<h1>tokenfleet demo</h1>"
        f"<pre>{escape(summary)}</pre>"
        "<h2>Cost per 1M tokens: the fleet against one large tier, static, no cache</h2>" + cost_chart(run)
        + "<h2>Traffic and cache hits</h2>" + traffic_chart(run) + cache_table(run)
        + "<h2>Replicas the autoscaler asked for</h2>" + replica_chart(run)
        + "<h2>What the run cost, per Deployment</h2>" + pods_table(run)
        + "<p>Engines are billed at their ModelTier's GPU price from pod creation to stop, the router and cache at "
          "their CPU requests; the baseline replays the same requests (tokenfleet.replay) on the largest tier. "
          "See docs/cost-model.md.</p>"
    )
    return page("tokenfleet demo", body)
