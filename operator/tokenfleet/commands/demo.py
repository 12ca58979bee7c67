"""``tokenfleet demo``: the whole product on this machine, no cluster and no GPU, in about a minute."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    from tokenfleet.demo.run import DemoOptions

    d = DemoOptions()
    parser.description = (
        "Start a local Kubernetes API emulator, the real operator, Prometheus and a local kubelet that runs the "
        "operator's Deployments as processes (engine emulators, cache, router); apply a fleet of three tiers in "
        "cascade mode with a cache; replay a slice of the Azure LLM trace 2023 through the router with the openai "
        "client while the autoscaler acts; then print and write the cost per 1M tokens against a baseline (one "
        "large tier, static, no cache), cache hits, escalations and the replica timeline. See docs/quickstart.md.")
    add = parser.add_argument
    add("--duration", type=float, default=d.duration,
        help="seconds of traffic; the trace slice is compressed into them (default %(default)s)")
    add("--rps", type=float, default=d.rps, help="mean requests per second sent (default %(default)s)")
    add("-f", "--filename", type=Path, default=d.fleet_file,
        help="YAML with the fleet to run: ModelTiers, a CachePolicy, one InferenceFleet (default: examples/demo)")
    add("--trace", type=Path, default=d.trace,
        help="CSV in the Azure trace format whose arrivals and token counts drive the traffic (default: the "
             "bundled 30-minute slice)")
    add("--startup-delay", type=float, default=d.startup_delay,
        help="seconds an engine replica takes to start (real vLLM pods: about 90) (default %(default)s)")
    add("--autoscale-interval", type=float, default=d.autoscale_interval,
        help="seconds between the autoscaler's decisions (default %(default)s)")
    add("--start-timeout", type=float, default=d.start_timeout,
        help="seconds the fleet gets to become ready before the demo gives up (default %(default)s)")
    add("--report", type=Path, help="write the HTML report here (default: report.html in the work directory)")
    add("--workdir", type=Path, help="directory for logs, pod files and the report (default: a new temp dir)")
    add("--no-prometheus", action="store_true", help="run without Prometheus: the autoscaler holds replicas")
    add("--no-report-open", action="store_true", help="do not open the report in a browser at the end")
    add("--seed", type=int, default=d.seed, help="seed of the traffic's sampling and prompts (default %(default)s)")
    add("--verbose", action="store_true", help="also log the kubelet's pod events")


def run(args: argparse.Namespace) -> int:
    import logging

    from tokenfleet.demo.run import DemoOptions, main

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    for flag, value in (("--duration", args.duration), ("--rps", args.rps), ("--start-timeout", args.start_timeout),
                        ("--autoscale-interval", args.autoscale_interval)):
        if value <= 0:
            print(f"error: {flag} must be > 0, not {value:g}", file=sys.stderr)
            return 2
    if args.startup_delay < 0:
        print("error: --startup-delay must be >= 0", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tokenfleet-demo-"))
    options = DemoOptions(duration=args.duration, rps=args.rps, fleet_file=args.filename, trace=args.trace,
                          startup_delay=args.startup_delay, autoscale_interval=args.autoscale_interval,
                          start_timeout=args.start_timeout, workdir=workdir,
                          report=args.report or workdir / "report.html", seed=args.seed,
                          prometheus=not args.no_prometheus)
    code = main(options, out=lambda line: print(line, flush=True))
    if code == 0 and not args.no_report_open:
        open_report(options.report)
    return code


def open_report(path: Path | None) -> None:
    """Open the report in a graphical browser, only on a desktop (never a text browser in this terminal)."""
    if path is None or not sys.stdout.isatty():
        return
    if sys.platform != "darwin" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return
    import webbrowser

    try:
        webbrowser.get().open(path.resolve().as_uri())
    except webbrowser.Error:
        pass
