"""The ``tokenfleet`` command: dispatches to one module per subcommand, imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module under tokenfleet.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "run a whole fleet locally (no cluster, no GPU) and report its cost per token"),
    "plan": ("plan", "what-if: monthly cost of a fleet on a trace, and the saving of each lever"),
    "render": ("render", "print the Kubernetes manifests the operator would create (like helm template)"),
    "crds": ("crds", "write the CustomResourceDefinitions generated from the API models"),
    "operator": ("operator", "run the operator (kopf) against the current kubeconfig"),
    "router": ("router", "run the OpenAI-compatible router"),
    "cache": ("cache", "run the exact + semantic response cache service"),
    "emulate-engine": ("emulate_engine", "run a vLLM-compatible engine emulator (no GPU needed)"),
    "emulate-apiserver": ("emulate_apiserver", "run the local Kubernetes API emulator"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenfleet",
        description="LLM inference fleets at the lowest cost per token that meets their targets.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {n:<18} {h}" for n, (_, h) in COMMANDS.items()),
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("command", nargs="?", help="one of the commands below")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    if argv[0] == "--version":
        from tokenfleet import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.error(f"unknown command {name!r}; see tokenfleet --help")
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(f"tokenfleet.commands.{module_name}")
    parser = argparse.ArgumentParser(prog=f"tokenfleet {name}", description=help_text)
    module.configure(parser)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)
