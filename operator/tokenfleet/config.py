"""Operator settings: read once from TOKENFLEET_* environment variables, then overridden by CLI flags."""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from tokenfleet.api.common import QUANTITY_PATTERN
from tokenfleet.render import Settings

LOG_FORMATS = ("json", "plain")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


class SettingError(ValueError):
    """A setting's value the operator refuses; ``field`` names the OperatorConfig field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field.replace('_', ' ')} {problem}")
        self.field, self.problem = field, problem


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator is configured with; see docs/operator.md for each setting."""

    image: str = Settings.image
    image_pull_policy: str = Settings.image_pull_policy
    watch_namespaces: tuple[str, ...] = ()  # empty: every namespace
    peering: str = ""  # kopf peering name; empty: standalone
    prometheus_url: str = ""  # empty: the autoscaler holds replicas where they are
    autoscale_interval_seconds: float = 15.0
    metrics_port: int = 8080
    health_port: int = 8081
    log_level: str = "INFO"
    log_format: str = "json"
    router_resources: dict = field(default_factory=lambda: dict(Settings().router_resources))
    cache_resources: dict | None = None  # None: derived from each CachePolicy's maxEntries

    def __post_init__(self) -> None:
        if self.image_pull_policy not in PULL_POLICIES:
            raise SettingError("image_pull_policy", f"must be one of {', '.join(PULL_POLICIES)}")
        if self.log_format not in LOG_FORMATS:
            raise SettingError("log_format", f"must be one of {', '.join(LOG_FORMATS)}")
        if self.log_level not in LOG_LEVELS:
            raise SettingError("log_level", f"must be one of {', '.join(LOG_LEVELS)}")
        if self.autoscale_interval_seconds <= 0:
            raise SettingError("autoscale_interval_seconds", "must be positive")
        for name in ("metrics_port", "health_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise SettingError(name, "must be a port number (0 turns it off)")

    @property
    def render_settings(self) -> Settings:
        """The renderer's settings (the image the router and cache run)."""
        return Settings(image=self.image, image_pull_policy=self.image_pull_policy,
                        router_resources=self.router_resources, cache_resources=self.cache_resources)

    @property
    def clusterwide(self) -> bool:
        return not self.watch_namespaces


# field -> (environment variable, parser)
ENV: dict[str, tuple[str, object]] = {
    "image": ("TOKENFLEET_IMAGE", str),
    "image_pull_policy": ("TOKENFLEET_IMAGE_PULL_POLICY", str),
    "watch_namespaces": ("TOKENFLEET_WATCH_NAMESPACES", lambda v: parse_namespaces(v)),
    "peering": ("TOKENFLEET_PEERING", str.strip),
    "prometheus_url": ("TOKENFLEET_PROMETHEUS_URL", str.strip),
    "autoscale_interval_seconds": ("TOKENFLEET_AUTOSCALE_INTERVAL_SECONDS", float),
    "metrics_port": ("TOKENFLEET_METRICS_PORT", int),
    "health_port": ("TOKENFLEET_HEALTH_PORT", int),
    "log_level": ("TOKENFLEET_LOG_LEVEL", lambda v: v.strip().upper()),
    "log_format": ("TOKENFLEET_LOG_FORMAT", lambda v: v.strip().lower()),
    "router_resources": ("TOKENFLEET_ROUTER_RESOURCES", lambda v: parse_resources(v)),
    "cache_resources": ("TOKENFLEET_CACHE_RESOURCES", lambda v: parse_resources(v)),
}


def parse_resources(value: str) -> dict:
    """A container's resources as JSON: {"requests": {...}, "limits": {...}} with string quantities."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(parsed, dict) or not parsed or set(parsed) - {"requests", "limits"}:
        raise ValueError('expected {"requests": {...}, "limits": {...}}')
    for section in parsed.values():
        if not isinstance(section, dict) or not all(isinstance(q, str) for q in section.values()):
            raise ValueError("quantities must be strings, e.g. {\"cpu\": \"500m\", \"memory\": \"1Gi\"}")
        bad = [f"{name}: {q!r}" for name, q in section.items() if not re.match(QUANTITY_PATTERN, q)]
        if bad:
            raise ValueError(f"not Kubernetes quantities (e.g. 500m, 2, 1Gi): {', '.join(bad)}")
    return parsed


def parse_namespaces(value: str) -> tuple[str, ...]:
    """A comma-separated namespace list; blanks dropped, order kept, duplicates removed."""
    names = [n.strip() for n in value.split(",")]
    return tuple(dict.fromkeys(n for n in names if n))


def from_env(env: Mapping[str, str] | None = None) -> OperatorConfig:
    """Settings from TOKENFLEET_* variables; unset or empty variables keep the defaults."""
    env = os.environ if env is None else env
    values = {}
    for name, (var, parse) in ENV.items():
        raw = env.get(var, "")
        if raw.strip() == "":
            continue
        try:
            values[name] = parse(raw)  # type: ignore[operator]
        except ValueError as err:
            raise ValueError(f"{var}={raw!r}: {err}") from None
    try:
        return OperatorConfig(**values)
    except SettingError as err:
        var = ENV[err.field][0]
        raise ValueError(f"{var}={env.get(var, '')!r}: {err.problem}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI flags; each overrides its environment variable when given."""
    flag = parser.add_argument
    flag("--image", help="image of the router and cache workloads (env TOKENFLEET_IMAGE)")
    flag("--image-pull-policy", choices=PULL_POLICIES, help="their pull policy (env TOKENFLEET_IMAGE_PULL_POLICY)")
    flag("--namespace", dest="watch_namespaces", action="append", metavar="NS",
         help="watch only this namespace; repeatable or comma-separated; default: all namespaces "
              "(env TOKENFLEET_WATCH_NAMESPACES)")
    flag("--peering", help="kopf peering name for high availability; empty: standalone (env TOKENFLEET_PEERING)")
    flag("--prometheus-url",
         help="Prometheus the autoscaler reads; empty: replicas hold (env TOKENFLEET_PROMETHEUS_URL)")
    flag("--autoscale-interval", dest="autoscale_interval_seconds", type=float, metavar="SECONDS",
         help="seconds between autoscaling decisions (env TOKENFLEET_AUTOSCALE_INTERVAL_SECONDS, default 15)")
    flag("--metrics-port", type=int,
         help="port of the operator's /metrics; 0 disables it (env TOKENFLEET_METRICS_PORT, default 8080)")
    flag("--health-port", type=int,
         help="port of the liveness probe /healthz; 0 disables it (env TOKENFLEET_HEALTH_PORT, default 8081)")
    flag("--log-level", type=str.upper, choices=LOG_LEVELS, help="log level (env TOKENFLEET_LOG_LEVEL, default INFO)")
    flag("--log-format", choices=LOG_FORMATS, help="log format (env TOKENFLEET_LOG_FORMAT, default json)")


def with_args(config: OperatorConfig, args: argparse.Namespace) -> OperatorConfig:
    """``config`` with every flag that was given on the command line applied over it."""
    changes = {}
    for f in fields(OperatorConfig):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if f.name == "watch_namespaces":
            value = parse_namespaces(",".join(value))
        changes[f.name] = value
    return replace(config, **changes)
