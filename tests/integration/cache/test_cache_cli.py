"""`tokenfleet cache` from the command line: the policy from a file or the operator's env, clear errors."""

from __future__ import annotations

import json
import subprocess
import time

from tests.integration.cache.conftest import cache_service, lookup, store
from tests.support.procs import tokenfleet_cmd


def test_the_policy_the_operator_renders_into_the_environment_is_honoured(logs):
    policy = {"exact": {"enabled": True, "ttl": "1s"}, "semantic": {"enabled": False}, "store": {"type": "memory"}}
    with cache_service(logs, env={"TOKENFLEET_CACHE_POLICY": json.dumps(policy)}) as cache:
        stats = cache.get("/v1/stats").json()
        assert stats["policy"]["semantic"]["enabled"] is False and stats["policy"]["exact"]["ttl"] == "1s"
        assert stats["ready"] and not stats["embedding"]["loaded"]  # no semantic layer: no model to wait for
        store(cache, "What is the capital of France?", "Paris")
        assert lookup(cache, "What is the capital of France?")["kind"] == "exact"
        assert lookup(cache, "What's the capital city of France?") == {"hit": False}  # semantic layer off
        time.sleep(1.1)
        assert lookup(cache, "What is the capital of France?") == {"hit": False}  # past the exact TTL


def test_a_cachepolicy_file_sets_threshold_and_capacity(logs):
    config = logs / "policy.yaml"
    config.write_text("apiVersion: tokenfleet.io/v1alpha1\nkind: CachePolicy\nmetadata: {name: shared}\n"
                      "spec:\n  semantic: {similarityThreshold: 0.999, maxEntries: 1}\n")
    with cache_service(logs, "--config", str(config)) as cache:
        store(cache, "How do I reverse a list in Python?", "reversed()")
        assert lookup(cache, "How can I reverse a Python list?") == {"hit": False}  # below 0.999
        store(cache, "What is the capital of France?", "Paris")
        stats = cache.get("/v1/stats").json()
        assert stats["threshold"] == 0.999 and stats["entries"] == 1


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(tokenfleet_cmd("cache", *args), capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_a_bad_policy_or_a_missing_redis_url_exits_2_with_the_reason(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("semantic: {similarityThreshold: 1.5}\n")
    result = run_cli("--config", str(bad))
    assert result.returncode == 2 and "semantic.similarityThreshold" in result.stderr
    result = run_cli("--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "no such file" in result.stderr
    policy = {"store": {"type": "redis", "redisSecretRef": {"name": "r", "key": "url"}}}
    result = run_cli(env={"TOKENFLEET_CACHE_POLICY": json.dumps(policy), "TOKENFLEET_REDIS_URL": ""})
    assert result.returncode == 2 and "TOKENFLEET_REDIS_URL" in result.stderr
    result = run_cli("--redis", "localhost:6379")
    assert result.returncode == 2 and "redis://" in result.stderr
    result = run_cli("--index-threads", "0")
    assert result.returncode == 2 and "--index-threads" in result.stderr
