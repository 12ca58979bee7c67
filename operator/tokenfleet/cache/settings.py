"""Settings of the cache service, read once: command-line flags, then the CachePolicy (file or env), then defaults."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml
from pydantic import ValidationError

from tokenfleet.api.common import parse_duration
from tokenfleet.api.v1alpha1 import CachePolicySpec
from tokenfleet.cache.core import CacheConfig

POLICY_ENV = "TOKENFLEET_CACHE_POLICY"
REDIS_ENV = "TOKENFLEET_REDIS_URL"
DEFAULT_PORT = 8080


class SettingsError(ValueError):
    """A setting the service cannot start with; the message says which and why."""


@dataclass(frozen=True)
class CacheSettings:
    """Everything the cache service needs to start."""

    policy: CachePolicySpec = field(default_factory=CachePolicySpec)
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    redis_url: str | None = None
    redis_prefix: str = "tokenfleet:cache:"
    embed_threads: int = 1
    index_threads: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))  # HNSW builds, off the loop
    precision: str = "int8"  # the measured fastest path that keeps the benchmark quality; fp32 = reference
    batch_max: int = 64  # texts per embedding call
    batch_window_ms: float = 0.0  # extra wait for a batch to fill (0: batch only what queued while busy)
    queue_max: int = 128  # texts waiting for the model beyond this are shed (~0.2 s of int8 work on one core)
    sweep_seconds: float = 5.0  # how often expired entries are dropped
    max_response_bytes: int = 1 << 20  # larger responses are not cached
    model_dir: Path | None = None

    @property
    def store(self) -> str:
        """``redis`` when a Redis URL is set, else ``memory``."""
        return "redis" if self.redis_url else "memory"

    def cache_config(self) -> CacheConfig:
        """The policy in the core's units."""
        p = self.policy
        return CacheConfig(
            exact_enabled=p.exact.enabled, exact_ttl=parse_duration(p.exact.ttl),
            semantic_enabled=p.semantic.enabled, semantic_ttl=parse_duration(p.semantic.ttl),
            threshold=p.semantic.similarity_threshold, max_entries=p.semantic.max_entries, guard=p.semantic.guard,
        )


def parse_policy(text: str, source: str) -> CachePolicySpec:
    """A CachePolicy spec from YAML or JSON: a whole CachePolicy object or just its spec."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        raise SettingsError(f"{source}: not YAML or JSON: {err}") from None
    if isinstance(data, dict) and data.get("kind") == "CachePolicy":
        data = data.get("spec") or {}
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: expected a CachePolicy spec (a mapping), got {type(data).__name__}")
    try:
        return CachePolicySpec.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'spec'}: {e['msg']}" for e in err.errors())
        raise SettingsError(f"{source}: invalid CachePolicy spec: {problems}") from None


def load_policy(config_file: str | None, environ: Mapping[str, str]) -> CachePolicySpec:
    """``--config`` file, else $TOKENFLEET_CACHE_POLICY (JSON, as the operator renders it), else defaults."""
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise SettingsError(f"--config {config_file}: no such file")
        return parse_policy(path.read_text(), f"--config {config_file}")
    if environ.get(POLICY_ENV, "").strip():
        return parse_policy(environ[POLICY_ENV], f"${POLICY_ENV}")
    return CachePolicySpec()


def load_settings(*, config_file: str | None = None, redis_url: str | None = None, host: str | None = None,
                  port: int | None = None, environ: Mapping[str, str] | None = None, **overrides) -> CacheSettings:
    """Settings from flags (None: not given) and the environment."""
    environ = os.environ if environ is None else environ
    policy = load_policy(config_file, environ)
    url = redis_url or environ.get(REDIS_ENV, "").strip() or None
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"Redis URL {url!r}: expected redis://host:port[/db], rediss://... or unix://...")
    if policy.store.type == "redis" and not url:
        raise SettingsError(f"the CachePolicy asks for store.type redis but no Redis URL is set "
                            f"(--redis or ${REDIS_ENV})")
    values = {"policy": policy, "redis_url": url, **{k: v for k, v in overrides.items() if v is not None}}
    if host is not None:
        values["host"] = host
    if port is not None:
        values["port"] = port
    settings = CacheSettings(**values)
    if settings.precision not in ("fp32", "int8"):
        raise SettingsError(f"precision must be fp32 or int8, not {settings.precision!r}")
    return settings


def policy_summary(settings: CacheSettings) -> dict:
    """The effective policy, for /v1/stats and the start-up log line."""
    return {"store": settings.store, **json.loads(json.dumps(settings.policy.to_wire()))}
