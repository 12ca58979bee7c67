"""``tokenfleet emulate-apiserver``: the local Kubernetes API emulator in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0,
                        help="TCP port on 127.0.0.1 to serve on (default 0: a free port, printed at start)")
    parser.add_argument("--kubeconfig", metavar="FILE",
                        help="write a kubeconfig (context 'localkube', no auth) pointing at the emulator to FILE")
    parser.add_argument("--crds", metavar="DIR",
                        help="register the CustomResourceDefinitions in this YAML file or directory (e.g. crds/)")
    parser.add_argument("--no-deployment-controller", action="store_true",
                        help="do not set Deployment status (replicas ready) automatically")
    parser.add_argument("--ready-delay", type=float, default=0.0, metavar="SECONDS",
                        help="seconds before the built-in controller reports a Deployment's replicas ready")


def run(args: argparse.Namespace) -> int:
    from tokenfleet.localkube import LocalKube

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    kube = LocalKube(port=args.port, deployment_controller=not args.no_deployment_controller,
                     ready_delay=args.ready_delay)
    try:
        kube.start()
    except OSError as err:
        print(f"tokenfleet emulate-apiserver: cannot serve on port {args.port}: {err}", file=sys.stderr)
        return 1
    try:
        if args.crds:
            names = kube.apply_crds(args.crds)
            print(f"registered CRDs: {', '.join(names) or '(none found)'}", flush=True)
        if args.kubeconfig:
            print(f"kubeconfig: {kube.write_kubeconfig(args.kubeconfig)}", flush=True)
        print(f"serving the Kubernetes API emulator at {kube.url} (Ctrl-C to stop)", flush=True)
        stop.wait()
    finally:
        kube.stop()
    return 0
