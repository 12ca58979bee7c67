"""``tokenfleet crds``: write the generated CRDs."""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenfleet.crds import CHART_CRDS_DIR, write_crds


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="crds", help="directory to write into (default: crds)")
    parser.add_argument(
        "--chart-out", default=None,
        help=f"also write the Helm chart's copy here (default: {CHART_CRDS_DIR} when --out is the default and the"
        " chart exists; '' to skip)",
    )


def run(args: argparse.Namespace) -> int:
    for path in write_crds(args.out):
        print(f"wrote {path}")
    chart_out = args.chart_out
    if chart_out is None:
        chart_out = str(CHART_CRDS_DIR) if args.out == "crds" else ""
    chart_out = Path(chart_out) if chart_out else None
    if chart_out is not None and (chart_out.parent.parent / "Chart.yaml").exists():
        for path in write_crds(chart_out):
            print(f"wrote {path}")
    return 0
