"""Operator settings from the environment and flags, and the kopf settings and handlers they produce."""

import argparse
import json
import logging
import os
import socket
import subprocess

import kopf
import pytest

from tests.support.procs import tokenfleet_cmd
from tokenfleet.config import OperatorConfig, add_arguments, from_env, parse_namespaces, with_args
from tokenfleet.handlers import build_registry, kopf_settings
from tokenfleet.kube import Kube
from tokenfleet.handlers.common import build_memo
from tokenfleet.render import Settings


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_match_the_renderer_and_the_chart_contract():
    cfg = from_env({})
    assert cfg.image == Settings().image and cfg.image_pull_policy == Settings().image_pull_policy
    assert (cfg.watch_namespaces, cfg.peering, cfg.prometheus_url) == ((), "", "")
    assert (cfg.autoscale_interval_seconds, cfg.metrics_port, cfg.health_port) == (15.0, 8080, 8081)
    assert (cfg.log_level, cfg.log_format) == ("INFO", "json")
    assert cfg.clusterwide


def test_every_environment_variable_is_read():
    cfg = from_env({
        "TOKENFLEET_IMAGE": "reg/tf:1", "TOKENFLEET_IMAGE_PULL_POLICY": "Always",
        "TOKENFLEET_WATCH_NAMESPACES": "a, b,,a", "TOKENFLEET_PEERING": "tokenfleet",
        "TOKENFLEET_PROMETHEUS_URL": "http://prom:9090", "TOKENFLEET_AUTOSCALE_INTERVAL_SECONDS": "30",
        "TOKENFLEET_METRICS_PORT": "9000", "TOKENFLEET_HEALTH_PORT": "9001", "TOKENFLEET_LOG_LEVEL": "debug",
        "TOKENFLEET_LOG_FORMAT": "PLAIN",
    })
    assert cfg == OperatorConfig(image="reg/tf:1", image_pull_policy="Always", watch_namespaces=("a", "b"),
                                 peering="tokenfleet", prometheus_url="http://prom:9090",
                                 autoscale_interval_seconds=30.0, metrics_port=9000, health_port=9001,
                                 log_level="DEBUG", log_format="plain")
    assert not cfg.clusterwide
    assert cfg.render_settings.image == "reg/tf:1"


@pytest.mark.parametrize("env, needle", [
    ({"TOKENFLEET_METRICS_PORT": "eighty"}, "invalid literal"),
    ({"TOKENFLEET_LOG_FORMAT": "xml"}, "must be one of json, plain"),
    ({"TOKENFLEET_IMAGE_PULL_POLICY": "Sometimes"}, "must be one of Always"),
    ({"TOKENFLEET_AUTOSCALE_INTERVAL_SECONDS": "0"}, "must be positive"),
    ({"TOKENFLEET_HEALTH_PORT": "70000"}, "must be a port number"),
])
def test_bad_settings_are_refused_with_the_variable_named(env, needle):
    (var, value), = env.items()
    with pytest.raises(ValueError) as err:
        from_env(env)
    assert str(err.value).startswith(f"{var}={value!r}: ") and needle in str(err.value)


def test_flags_override_the_environment_only_when_given():
    base = from_env({"TOKENFLEET_IMAGE": "env/img:1", "TOKENFLEET_WATCH_NAMESPACES": "a"})
    assert with_args(base, parse()) == base
    cfg = with_args(base, parse("--image", "flag/img:2", "--namespace", "x,y", "--namespace", "z",
                                "--metrics-port", "0", "--log-level", "warning"))
    assert (cfg.image, cfg.watch_namespaces, cfg.metrics_port, cfg.log_level) == (
        "flag/img:2", ("x", "y", "z"), 0, "WARNING")


def test_parse_namespaces_drops_blanks_and_duplicates():
    assert parse_namespaces(" a ,b,, a,c ") == ("a", "b", "c")
    assert parse_namespaces("") == ()


def test_kopf_keeps_its_state_in_annotations_and_posts_only_deliberate_warnings():
    settings = kopf_settings(OperatorConfig())
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.persistence.progress_storage.prefix == "tokenfleet.io"
    assert settings.posting.level == logging.WARNING and not settings.posting.loggers
    assert settings.peering.standalone


def test_a_peering_name_turns_peering_on():
    settings = kopf_settings(OperatorConfig(peering="tokenfleet", watch_namespaces=("a",)))
    assert not settings.peering.standalone and settings.peering.name == "tokenfleet"
    assert settings.peering.mandatory and not settings.peering.clusterwide


def test_peers_draw_distinct_priorities_so_they_do_not_all_freeze():
    priorities = {kopf_settings(OperatorConfig(peering="tokenfleet")).peering.priority for _ in range(5)}
    assert len(priorities) > 1 and min(priorities) > 0


def test_children_are_watched_through_a_server_side_label_selector():
    selectors = kopf_settings(OperatorConfig()).watching.label_selectors
    assert set(selectors.values()) == {"app.kubernetes.io/managed-by=tokenfleet-operator"}
    assert {s.any_name for s in selectors} == {
        "deployments", "services", "configmaps"}


def handler_ids(registry):
    found = set()
    for sub in (registry._changing, registry._watching, registry._indexing, registry._spawning):
        found |= {str(h.id) for h in sub.get_all_handlers()}
    return found


def test_the_registry_holds_every_kind_and_no_deletion_handler():
    registry = build_registry(OperatorConfig())
    ids = handler_ids(registry)
    assert {"modeltier", "cachepolicy", "fleet", "fleet_dependencies", "child_deployments"} <= ids
    assert not any(getattr(h, "reason", None) == kopf.Reason.DELETE for h in registry._changing.get_all_handlers())


def test_the_memo_carries_shared_state_and_the_error_counter():
    memo = build_memo(OperatorConfig(image="x/y:1"), Kube(api_client=None))
    memo.reconcile_errors.labels("ModelTier").inc()
    value = memo.metrics.get_sample_value("tokenfleet_operator_reconcile_errors_total", {"kind": "ModelTier"})
    assert value == 1.0
    assert memo.metrics.get_sample_value("tokenfleet_operator_reconcile_errors_total", {"kind": "CachePolicy"}) == 0
    assert memo.settings.image == "x/y:1"
    with memo.locks.hold(("ModelTier", "ns", "a")):
        with memo.locks.hold(("ModelTier", "ns", "b")):
            pass


@pytest.mark.parametrize("raw,ok", [
    ('{"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}', True),
    ('{"requests": {"cpu": 2}}', False),
    ('{"cpu": "2"}', False),
    ('not json', False),
    ('{}', False),
    ('{"requests": {"cpu": "two"}}', False),
])
def test_workload_resources_come_from_json_env(raw, ok):
    env = {"TOKENFLEET_CACHE_RESOURCES": raw}
    if ok:
        assert from_env(env).render_settings.cache_resources == json.loads(raw)
    else:
        with pytest.raises(ValueError, match="TOKENFLEET_CACHE_RESOURCES"):
            from_env(env)


def run_operator(tmp_path, env: dict) -> subprocess.CompletedProcess:
    """``tokenfleet operator`` with a kubeconfig that points nowhere (it must stop before connecting)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}], "users": [{"name": "u", "user": {}}],
    }))
    full_env = {**os.environ, "KUBECONFIG": str(kubeconfig), "TOKENFLEET_HEALTH_PORT": "0", **env}
    return subprocess.run(tokenfleet_cmd("operator"), env=full_env, capture_output=True, text=True, timeout=60)


def test_a_bad_setting_stops_the_operator_at_start_naming_the_variable(tmp_path):
    result = run_operator(tmp_path, {"TOKENFLEET_LOG_FORMAT": "xml"})
    assert result.returncode == 2 and "TOKENFLEET_LOG_FORMAT" in result.stderr and "Traceback" not in result.stderr


def test_a_taken_metrics_port_stops_the_operator_with_a_message(tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        result = run_operator(tmp_path, {"TOKENFLEET_METRICS_PORT": str(taken.getsockname()[1])})
    assert result.returncode == 1 and "TOKENFLEET_METRICS_PORT" in result.stderr and "Traceback" not in result.stderr
