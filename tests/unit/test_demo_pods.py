"""The demo kubelet's pure rules: Deployment -> local process, Service URL rewriting, replica planning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tokenfleet.api.v1alpha1 import ModelTierSpec
from tokenfleet.demo import pods
from tokenfleet.demo.pods import EngineOptions, PodView, UnsupportedWorkload
from tokenfleet.render import render_documents

REPO = Path(__file__).resolve().parents[2]
FLEET = REPO / "examples" / "demo" / "fleet.yaml"


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all(FLEET.read_text()) if d]
    for d in docs:
        d["metadata"]["namespace"] = "demo"
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in render_documents(docs)}


@pytest.fixture(scope="module")
def tiers() -> dict[str, ModelTierSpec]:
    docs = [d for d in yaml.safe_load_all(FLEET.read_text()) if d and d["kind"] == "ModelTier"]
    return {d["metadata"]["name"]: ModelTierSpec.model_validate(d["spec"]) for d in docs}


def resolve(service: str, namespace: str, port: int) -> str:
    return f"127.0.0.1:{ {'llama-1b-int4-engine': 9001, 'shared-cache-cache': 9100}.get(service, 9999) }"


@pytest.mark.parametrize("text, expected", [
    ("http://llama-1b-int4-engine.demo.svc:8000/v1", "http://127.0.0.1:9001/v1"),
    ("http://shared-cache-cache.demo.svc.cluster.local:8080", "http://127.0.0.1:9100"),
    ('{"a": "http://x.demo.svc:1/v1", "b": "http://y.other.svc:2"}', '{"a": "http://127.0.0.1:9999/v1", '
                                                                    '"b": "http://127.0.0.1:9999"}'),
    ("http://example.com:8000/v1", "http://example.com:8000/v1"),  # not a Service address
    ("llama.demo.svc", "llama.demo.svc"),  # no port: left alone
])
def test_service_urls_are_rewritten_to_local_proxies(text, expected):
    assert pods.rewrite_service_urls(text, resolve) == expected


@pytest.mark.parametrize("args, value, expected", [
    (["router", "--port", "8080"], "5000", ["router", "--port", "5000"]),
    (["cache", "--port=8080", "--x"], "5000", ["cache", "--port=5000", "--x"]),
    (["cache"], "5000", ["cache", "--port", "5000"]),
])
def test_replace_flag_moves_the_port(args, value, expected):
    assert pods.replace_flag(args, "--port", value) == expected


def test_an_engine_deployment_runs_the_emulator_configured_from_its_model_tier(rendered, tiers, tmp_path):
    dep = rendered["Deployment/llama-70b-awq-engine"]
    proc = pods.local_process(dep, python="py", port=4321, pod_dir=tmp_path, resolve=resolve,
                              tier_spec=tiers["llama-70b-awq"], engine=EngineOptions(startup_delay=2.5))
    argv = list(proc.argv)
    assert argv[:4] == ["py", "-m", "tokenfleet", "emulate-engine"]
    flags = dict(zip(argv[4::2], argv[5::2]))
    assert flags["--model"] == "llama-70b-awq"
    assert flags["--port"] == "4321" and flags["--host"] == "127.0.0.1"
    assert flags["--parameters-b"] == "70.6" and flags["--weights"] == "awq" and flags["--kv-cache"] == "fp8"
    assert flags["--gpu-type"] == "nvidia-h100" and flags["--gpu-count"] == "2"
    assert flags["--startup-delay"] == "2.5"
    assert proc.ready_path == "/health" and proc.port == 4321


def test_an_engine_without_its_model_tier_is_refused(rendered, tmp_path):
    with pytest.raises(pods.NotYet, match="ModelTier llama-1b-int4 is not known yet"):
        pods.local_process(rendered["Deployment/llama-1b-int4-engine"], python="py", port=1, pod_dir=tmp_path,
                           resolve=resolve, tier_spec=None)


def test_the_router_gets_its_config_map_as_a_file_with_local_service_urls(rendered, tmp_path):
    dep = rendered["Deployment/chat-router"]
    cm = rendered["ConfigMap/chat-router"]
    proc = pods.local_process(dep, python="py", port=5555, pod_dir=tmp_path, resolve=resolve,
                              config_maps={"chat-router": cm})
    argv = list(proc.argv)
    assert argv[:4] == ["py", "-m", "tokenfleet", "router"]
    config_path = argv[argv.index("--config") + 1]
    assert config_path == str(tmp_path / "config" / "router.json")
    assert argv[argv.index("--port") + 1] == "5555" and argv[argv.index("--host") + 1] == "127.0.0.1"
    config = json.loads(proc.files["config/router.json"])
    urls = {t["name"]: t["url"] for t in config["tiers"]}
    assert urls["llama-1b-int4"] == "http://127.0.0.1:9001/v1"
    assert config["cache"]["url"] == "http://127.0.0.1:9100"
    assert ".svc" not in proc.files["config/router.json"]
    assert proc.ready_path == "/readyz"


def test_the_router_waits_for_its_config_map(rendered, tmp_path):
    with pytest.raises(pods.NotYet, match="ConfigMap chat-router"):
        pods.local_process(rendered["Deployment/chat-router"], python="py", port=1, pod_dir=tmp_path,
                           resolve=resolve, config_maps={})


def test_the_cache_runs_its_command_with_its_environment(rendered, tmp_path):
    proc = pods.local_process(rendered["Deployment/shared-cache-cache"], python="py", port=7777, pod_dir=tmp_path,
                              resolve=resolve)
    assert list(proc.argv) == ["py", "-m", "tokenfleet", "cache", "--port", "7777", "--host", "127.0.0.1"]
    policy = json.loads(proc.env["TOKENFLEET_CACHE_POLICY"])
    assert policy["semantic"]["similarityThreshold"] == 0.79


def test_other_containers_are_not_run(rendered, tmp_path):
    dep = json.loads(json.dumps(rendered["Deployment/shared-cache-cache"]))
    dep["spec"]["template"]["spec"]["containers"][0]["command"] = ["nginx"]
    with pytest.raises(UnsupportedWorkload, match="nginx"):
        pods.local_process(dep, python="py", port=1, pod_dir=tmp_path, resolve=resolve)


def test_a_template_change_changes_the_hash(rendered):
    dep = rendered["Deployment/chat-router"]
    changed = json.loads(json.dumps(dep))
    changed["spec"]["template"]["metadata"]["annotations"]["tokenfleet.io/config-hash"] = "other"
    assert pods.template_hash(dep) != pods.template_hash(changed)
    changed_replicas = {**dep, "spec": {**dep["spec"], "replicas": 7}}
    assert pods.template_hash(dep) == pods.template_hash(changed_replicas)


def view(name: str, template: str = "t1", ready: bool = True, started: float = 0.0) -> PodView:
    return PodView(name, template, ready, started)


@pytest.mark.parametrize("desired, existing, start, stop", [
    (2, [], 2, []),
    (2, [view("a")], 1, []),
    (1, [view("a", started=1), view("b", started=2)], 0, ["b"]),  # newest first
    (1, [view("a", started=2), view("b", ready=False, started=1)], 0, ["b"]),  # not ready first
    (0, [view("a"), view("b")], 0, ["a", "b"]),
    # rolling update: old pods stay until new ones are ready
    (1, [view("old", "t0")], 1, []),
    (1, [view("old", "t0"), view("new", ready=False)], 0, []),
    (1, [view("old", "t0"), view("new")], 0, ["old"]),
    (2, [view("o1", "t0"), view("o2", "t0"), view("n1")], 1, ["o1"]),
    (0, [view("old", "t0")], 0, ["old"]),
])
def test_replica_planning_follows_a_rolling_update(desired, existing, start, stop):
    got_start, got_stop = pods.plan_replicas(desired, "t1", existing)
    assert got_start == start
    assert sorted(got_stop) == sorted(stop)


@pytest.mark.parametrize("selector, labels, expected", [
    ({"app": "a"}, {"app": "a", "x": "y"}, True),
    ({"app": "a", "tier": "t"}, {"app": "a"}, False),
    ({}, {"app": "a"}, False),
    (None, {"app": "a"}, False),
])
def test_service_selectors_match_pod_labels(selector, labels, expected):
    assert pods.selector_matches(selector, labels) is expected


@pytest.mark.parametrize("service_port, number, name, expected", [
    ({"port": 8000, "targetPort": "http"}, 8000, "http", True),
    ({"port": 8000, "targetPort": "metrics"}, 8000, "http", False),
    ({"port": 80, "targetPort": 8080}, 8080, "http", True),
    ({"port": 8080}, 8080, None, True),
    ({"port": 80, "targetPort": "8080"}, 8080, None, True),
])
def test_service_target_ports_resolve_by_name_or_number(service_port, number, name, expected):
    assert pods.target_port(service_port, number, name) is expected
