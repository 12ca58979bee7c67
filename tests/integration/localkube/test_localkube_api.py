"""The Python API others test with (write counting, requests, direct reads) and the CLI entry point."""

from __future__ import annotations

import subprocess

import yaml

from localkube_support import deployment, eventually, tier
from tests.support.procs import free_port, running, tokenfleet_cmd, tool
from tokenfleet.localkube import LocalKube


def test_write_count_counts_mutating_requests_by_resource_namespace_and_name(kube, apps, core, custom):
    kube.reset_counters()
    apps.create_namespaced_deployment("default", deployment("web"))
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"a": "b"}}})
    apps.read_namespaced_deployment("web", "default")
    core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All")
    custom.create_namespaced_custom_object("tokenfleet.io", "v1alpha1", "default", "modeltiers", tier("t"))
    assert kube.write_count() == 4  # the GET and the dry run are not writes
    assert kube.write_count(resource="deployments") == 2
    assert kube.write_count(resource="deployments.apps", name="web", namespace="default") == 2
    assert kube.write_count(resource="configmaps", name="cfg") == 1
    assert kube.write_count(resource="modeltiers", namespace="other") == 0
    kube.reset_counters()
    assert kube.write_count() == 0 and kube.requests == []


def test_controller_writes_are_not_counted_as_requests(kube, apps):
    apps.create_namespaced_deployment("default", deployment("web", replicas=2))
    eventually(lambda: (kube.get_object("apps/v1", "deployments", "default", "web").get("status") or {})
               .get("readyReplicas") == 2)
    assert kube.write_count(resource="deployments") == 1


def test_requests_record_method_path_query_and_status(kube, core):
    kube.reset_counters()
    core.list_namespaced_config_map("default", label_selector="a=b")
    core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    listed, created = kube.requests
    assert (listed.method, listed.path, listed.query, listed.status) == \
        ("GET", "/api/v1/namespaces/default/configmaps", {"labelSelector": "a=b"}, 200)
    assert (created.method, created.status, created.resource, created.namespace, created.name) == \
        ("POST", 201, "configmaps", "default", "x")


def test_the_deployment_controller_can_be_switched_off_and_delayed(tmp_path):
    from kubernetes import client, config
    with LocalKube(deployment_controller=False) as kube:
        apps = client.AppsV1Api(config.new_client_from_config(str(kube.write_kubeconfig(tmp_path / "kc"))))
        apps.create_namespaced_deployment("default", deployment("web"))
        assert kube.get_object("apps/v1", "deployments", "default", "web").get("status") in (None, {})
        kube.apply({**kube.get_object("apps/v1", "deployments", "default", "web"), "status": {"readyReplicas": 1}})
        assert kube.get_object("apps/v1", "deployments", "default", "web")["status"] == {"readyReplicas": 1}
        written = kube.set_status("apps/v1", "deployments", "default", "web", {"readyReplicas": 2})
        assert written["status"] == {"readyReplicas": 2} and written["metadata"]["generation"] == 1
    with LocalKube(ready_delay=0.3) as kube:
        apps = client.AppsV1Api(config.new_client_from_config(str(kube.write_kubeconfig(tmp_path / "kc2"))))
        apps.create_namespaced_deployment("default", deployment("web"))
        assert not (kube.get_object("apps/v1", "deployments", "default", "web").get("status") or {})
        eventually(lambda: (kube.get_object("apps/v1", "deployments", "default", "web").get("status") or {})
                   .get("readyReplicas") == 1)


def test_write_kubeconfig_names_cluster_context_and_user_localkube(kube, tmp_path):
    config = yaml.safe_load(kube.write_kubeconfig(tmp_path / "sub" / "kc").read_text())
    assert config["current-context"] == "localkube"
    assert config["clusters"][0] == {"name": "localkube", "cluster": {"server": kube.url}}
    assert config["users"][0]["name"] == "localkube"


def test_emulate_apiserver_command_reports_a_taken_port(tmp_path):
    with LocalKube() as kube:
        done = subprocess.run(tokenfleet_cmd("emulate-apiserver", "--port", str(kube.port)), capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 1 and f"cannot serve on port {kube.port}" in done.stderr


def test_emulate_apiserver_command_serves_until_terminated(tmp_path):
    port, kubeconfig = free_port(), tmp_path / "kc"
    cmd = tokenfleet_cmd("emulate-apiserver", "--port", str(port), "--kubeconfig", str(kubeconfig), "--crds", "crds")
    with running(cmd, ready_url=f"http://127.0.0.1:{port}/readyz", log_path=tmp_path / "log") as proc:
        eventually(kubeconfig.exists, timeout=10)
        done = subprocess.run([tool("kubectl"), "--kubeconfig", str(kubeconfig), "get", "crds", "-o", "name"],
                              capture_output=True, text=True, timeout=60)
        assert "customresourcedefinition.apiextensions.k8s.io/modeltiers.tokenfleet.io" in done.stdout.split()
    assert proc.returncode == 0
    assert "serving the Kubernetes API emulator" in (tmp_path / "log").read_text()
