"""``tokenfleet operator``: run the kopf operator against the current cluster (in-cluster or $KUBECONFIG)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from tokenfleet import config as operator_config


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Reconcile ModelTier, CachePolicy and InferenceFleet resources into vLLM, cache and router "
        "workloads. Every flag overrides its TOKENFLEET_* environment variable (docs/operator.md)."
    )
    operator_config.add_arguments(parser)


def setup_logging(cfg: operator_config.OperatorConfig) -> None:
    import kopf

    log_format = kopf.LogFormat.JSON if cfg.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(log_format=log_format, log_refkey="object" if cfg.log_format == "json" else None)
    logging.getLogger().setLevel(cfg.log_level)
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, logging.getLevelName(cfg.log_level)))


def start_metrics(port: int, registry):
    """Serve the operator's Prometheus registry on 0.0.0.0:port/metrics (a daemon thread)."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr="0.0.0.0", registry=registry)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = operator_config.with_args(operator_config.from_env(), args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import kopf

    from tokenfleet.handlers import build_registry, kopf_settings
    from tokenfleet.handlers.common import build_memo
    from tokenfleet.kube import Kube

    setup_logging(cfg)
    try:
        kube = Kube.from_environment()
    except Exception as err:  # the kubernetes client raises several types for a bad or missing config
        print(f"error: no Kubernetes configuration (in-cluster or KUBECONFIG): {err}", file=sys.stderr)
        return 1
    memo = build_memo(cfg, kube)
    try:
        server = start_metrics(cfg.metrics_port, memo.metrics) if cfg.metrics_port else None
    except OSError as err:
        print(f"error: cannot serve metrics on port {cfg.metrics_port} (TOKENFLEET_METRICS_PORT): {err}",
              file=sys.stderr)
        kube.api_client.close()
        return 1
    liveness = f"http://0.0.0.0:{cfg.health_port}/healthz" if cfg.health_port else None
    logging.getLogger(__name__).info(
        "tokenfleet operator: namespaces=%s peering=%s image=%s",
        ",".join(cfg.watch_namespaces) or "*", cfg.peering or "standalone", cfg.image,
    )
    try:
        asyncio.run(kopf.operator(
            registry=build_registry(cfg),
            settings=kopf_settings(cfg),
            memo=memo,
            clusterwide=cfg.clusterwide,
            namespaces=list(cfg.watch_namespaces),
            liveness_endpoint=liveness,
        ))
    finally:
        if server is not None:
            server[0].shutdown()
        kube.api_client.close()
    return 0
