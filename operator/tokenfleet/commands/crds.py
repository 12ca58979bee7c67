"""``tokenfleet crds``: write the generated CRDs."""

from __future__ import annotations

import argparse

from tokenfleet.crds import write_crds


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="crds", help="directory to write into (default: crds)")


def run(args: argparse.Namespace) -> int:
    for path in write_crds(args.out):
        print(f"wrote {path}")
    return 0
