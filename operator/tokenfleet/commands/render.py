"""``tokenfleet render -f FILE``: print the objects the operator would create, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from tokenfleet.render import RenderError, render_documents


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f", "--filename", action="append", required=True,
        help="YAML file or directory of tokenfleet resources ('-' reads stdin); repeatable",
    )
    parser.add_argument("-n", "--namespace", default="default", help="namespace for resources that name none")


def read_documents(paths: list[str]) -> list[dict]:
    """Every YAML document in the given files, directories (*.yaml, *.yml) or stdin."""
    docs: list[dict] = []
    for name in paths:
        if name == "-":
            texts = [sys.stdin.read()]
        else:
            path = Path(name)
            files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
            texts = [f.read_text() for f in files]
        for text in texts:
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def run(args: argparse.Namespace) -> int:
    try:
        docs = read_documents(args.filename)
    except (OSError, yaml.YAMLError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for doc in docs:
        if isinstance(doc, dict):
            doc.setdefault("metadata", {}).setdefault("namespace", args.namespace)
    try:
        objects = render_documents(docs)
    except RenderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, width=120))
    return 0
