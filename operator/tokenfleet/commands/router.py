"""``tokenfleet router``: run the OpenAI-compatible router from a config file or from flags."""

from __future__ import annotations

import argparse
import logging
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="RouterConfig file (JSON or YAML), as the operator renders into the router ConfigMap")
    parser.add_argument("--tier", action="append", metavar="NAME=URL", default=[],
                        help="a tier the router can reach, cheapest first; repeatable; NAME is also the model "
                             "name sent upstream; replaces the config file's tiers")
    parser.add_argument("--cache-url", metavar="URL",
                        help="cache service base URL (tokenfleet cache); empty string: none")
    parser.add_argument("--api-keys", metavar="FILE",
                        help="file of KEY=TENANT lines; without it the router is open (tenant 'default')")
    parser.add_argument("--mode", choices=["cascade", "complexity", "fixed"],
                        help="routing mode; default: the config's, or cascade with several --tier, fixed with one")
    parser.add_argument("--fleet", help="fleet name (also accepted as a model name); default: the config's")
    parser.add_argument("--local-cache-entries", type=int, metavar="N",
                        help="in-process exact LRU size; 0 disables it (default: the config's, 10000)")
    parser.add_argument("--no-coalescing", action="store_true",
                        help="do not share upstream calls between identical in-flight requests")
    parser.add_argument("--classifier", metavar="MODULE:FUNCTION",
                        help="complexity classifier, a function (body) -> score in [0, 1]; default: heuristic")
    parser.add_argument("--server", choices=["native", "uvicorn"], default="native",
                        help="HTTP front end: native (an asyncio protocol over httptools, the fastest) or "
                             "uvicorn (the same endpoints as an ASGI app); default: native")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                        help="log level (default: warning)")


def run(args: argparse.Namespace) -> int:
    from tokenfleet.router.settings import SettingsError, build_config, build_settings

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = build_config(
            config_file=args.config, tiers=args.tier, cache_url=args.cache_url, api_keys_file=args.api_keys,
            mode=args.mode, fleet=args.fleet, local_cache_entries=args.local_cache_entries,
            coalescing=False if args.no_coalescing else None,
        )
        settings = build_settings(config, host=args.host, port=args.port, classifier=args.classifier)
        from tokenfleet.router.policies import load_classifier

        load_classifier(args.classifier or config.routing.complexity.classifier)
    except (SettingsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.server == "native":
        from tokenfleet.router.server import serve

        serve(settings)
    else:
        from tokenfleet.router.app import build_app

        serve_asgi(build_app(settings), settings.host, settings.port, args.log_level)
    return 0


def serve_asgi(app, host: str, port: int, log_level: str = "warning") -> None:
    """uvicorn with uvloop and httptools, no access log: the fastest stack uvicorn offers."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, loop="uvloop", http="httptools", lifespan="on",
                access_log=False, log_level=log_level, server_header=False, date_header=False,
                proxy_headers=False)
