"""``tokenfleet cache``: run the exact + semantic response cache service."""

from __future__ import annotations

import argparse
import logging
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    parser.add_argument("--redis", metavar="URL",
                        help="keep entries and vectors in Redis (redis://host:port/db) so that replicas share "
                             "them and a restart keeps them; default: $TOKENFLEET_REDIS_URL, else memory only")
    parser.add_argument("--config", metavar="FILE",
                        help="CachePolicy (a whole object or its spec, YAML or JSON); default: "
                             "$TOKENFLEET_CACHE_POLICY (JSON, as the operator renders it), else the API defaults")
    parser.add_argument("--precision", choices=["int8", "fp32"], default="int8",
                        help="embedding weights: int8 (default: about twice as fast, same benchmark quality) or "
                             "fp32 (equal to the sentence-transformers reference); see docs/cache.md")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="onnxruntime threads per embedding call (default: 1; batching supplies throughput)")
    parser.add_argument("--index-threads", type=int, default=None, metavar="N",
                        help="threads that build HNSW indexes off the event loop (default: the CPUs this process "
                             "may use); lower it under a CPU limit so that builds do not starve lookups")
    parser.add_argument("--batch-window-ms", type=float, default=0.0, metavar="MS",
                        help="hold a lone text this long for others to share its embedding call (default: 0: "
                             "batch only what queues while the model is busy)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log level (default: info)")


def run(args: argparse.Namespace) -> int:
    from tokenfleet.cache.settings import SettingsError, load_settings

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(config_file=args.config, redis_url=args.redis, host=args.host, port=args.port,
                                 precision=args.precision, embed_threads=args.threads,
                                 batch_window_ms=args.batch_window_ms, index_threads=args.index_threads)
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.threads < 1 or args.batch_window_ms < 0 or (args.index_threads is not None and args.index_threads < 1):
        print("error: --threads and --index-threads must be at least 1, --batch-window-ms at least 0",
              file=sys.stderr)
        return 2
    import uvicorn

    from tokenfleet.cache.app import create_app

    logging.getLogger("tokenfleet.cache").info(
        "cache service on %s:%d, store %s, threshold %.3f, guard %s", settings.host, settings.port, settings.store,
        settings.policy.semantic.similarity_threshold, settings.policy.semantic.guard)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level,
                access_log=False, lifespan="on")
    return 0
