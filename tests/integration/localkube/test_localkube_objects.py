"""Object identity, versions, generation, namespaces, errors and dry runs, through the real kubernetes client."""

from __future__ import annotations

import json
import re

import pytest
from kubernetes.client.exceptions import ApiException

from localkube_support import deployment, eventually, raw, tier


def status_of(err: ApiException) -> dict:
    return json.loads(err.body)


def test_created_objects_get_uid_resource_version_timestamp_and_generation(custom):
    first = custom.create_namespaced_custom_object("tokenfleet.io", "v1alpha1", "default", "modeltiers", tier("a"))
    second = custom.create_namespaced_custom_object("tokenfleet.io", "v1alpha1", "default", "modeltiers", tier("b"))
    meta1, meta2 = first["metadata"], second["metadata"]
    assert re.fullmatch(r"[0-9a-f-]{36}", meta1["uid"]) and meta1["uid"] != meta2["uid"]
    assert int(meta2["resourceVersion"]) > int(meta1["resourceVersion"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta1["creationTimestamp"])
    assert meta1["generation"] == 1 and meta1["namespace"] == "default"


def test_generation_bumps_on_spec_changes_only(custom):
    args = ("tokenfleet.io", "v1alpha1", "default", "modeltiers", "g")
    custom.create_namespaced_custom_object(*args[:4], tier("g"))
    labelled = custom.patch_namespaced_custom_object(*args, {"metadata": {"labels": {"x": "y"}}})
    assert labelled["metadata"]["generation"] == 1
    with_status = custom.patch_namespaced_custom_object_status(*args, {"status": {"replicas": 2}})
    assert with_status["metadata"]["generation"] == 1
    changed = custom.patch_namespaced_custom_object(*args, {"spec": {"replicas": 3}})
    assert changed["metadata"]["generation"] == 2
    assert int(changed["metadata"]["resourceVersion"]) > int(with_status["metadata"]["resourceVersion"])


def test_a_no_op_patch_keeps_the_resource_version(custom):
    args = ("tokenfleet.io", "v1alpha1", "default", "modeltiers", "same")
    created = custom.create_namespaced_custom_object(*args[:4], tier("same"))
    again = custom.patch_namespaced_custom_object(*args, {"spec": {"model": {"source": "org/model"}}})
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_generate_name_makes_a_unique_name(core):
    body = {"metadata": {"generateName": "cfg-"}, "data": {"a": "1"}}
    names = {core.create_namespaced_config_map("default", body).metadata.name for _ in range(3)}
    assert len(names) == 3 and all(n.startswith("cfg-") and len(n) > 4 for n in names)


def test_default_namespaces_exist_and_missing_namespace_is_404(core):
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system"} <= names
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "c"}})
    assert err.value.status == 404
    status = status_of(err.value)
    assert status["reason"] == "NotFound" and status["message"] == 'namespaces "nowhere" not found'


def test_cluster_scoped_and_namespaced_urls(kube):
    assert raw(kube, "GET", "/api/v1/namespaces/default")[1]["kind"] == "Namespace"
    code, crd = raw(kube, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/modeltiers.tokenfleet.io")
    assert code == 200 and crd["spec"]["scope"] == "Namespaced"
    # a cluster-scoped resource has no namespaced URL, a namespaced object needs its namespace
    assert raw(kube, "GET", "/apis/apiextensions.k8s.io/v1/namespaces/default/customresourcedefinitions")[0] == 404
    assert raw(kube, "GET", "/apis/tokenfleet.io/v1alpha1/modeltiers/x")[0] == 404
    assert raw(kube, "GET", "/apis/tokenfleet.io/v1alpha1/modeltiers")[1]["kind"] == "ModelTierList"


def test_list_has_kind_and_resource_version(custom, core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "one"}})
    listed = custom.list_namespaced_custom_object("tokenfleet.io", "v1alpha1", "default", "modeltiers")
    assert listed["kind"] == "ModelTierList" and int(listed["metadata"]["resourceVersion"]) > 0
    maps = core.list_namespaced_config_map("default")
    assert maps.kind == "ConfigMapList" and [m.metadata.name for m in maps.items] == ["one"]


def test_list_pages_with_limit_and_continue(core):
    for n in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"c{n}"}})
    page1 = core.list_namespaced_config_map("default", limit=2)
    page2 = core.list_namespaced_config_map("default", limit=2, _continue=page1.metadata._continue)
    page3 = core.list_namespaced_config_map("default", limit=2, _continue=page2.metadata._continue)
    names = [m.metadata.name for p in (page1, page2, page3) for m in p.items]
    assert names == ["c0", "c1", "c2", "c3", "c4"] and page3.metadata._continue is None


@pytest.mark.parametrize(("call", "code", "reason"), [
    ("duplicate", 409, "AlreadyExists"),
    ("missing", 404, "NotFound"),
    ("stale_put", 409, "Conflict"),
    ("invalid", 422, "Invalid"),
    ("bad_selector", 400, "BadRequest"),
    ("expired_continue", 410, "Expired"),
])
def test_errors_are_status_objects_with_reason_and_code(core, call, code, reason):
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    with pytest.raises(ApiException) as err:
        if call == "duplicate":
            core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
        elif call == "missing":
            core.read_namespaced_config_map("absent", "default")
        elif call == "stale_put":
            core.replace_namespaced_config_map("cm", "default", {"metadata": {"name": "cm", "resourceVersion": "1"}})
        elif call == "invalid":
            core.create_namespaced_config_map("default", {"metadata": {"name": "Not_Valid"}})
        elif call == "bad_selector":
            core.list_namespaced_config_map("default", label_selector="a in (")
        else:
            core.list_namespaced_config_map("default", limit=1, _continue="not-a-token")
    status = status_of(err.value)
    assert (err.value.status, status["kind"], status["code"], status["reason"]) == (code, "Status", code, reason)


def test_put_replaces_the_object_and_checks_resource_version(core):
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    body = {"metadata": {"name": "cm", "resourceVersion": created.metadata.resource_version}, "data": {"b": "2"}}
    replaced = core.replace_namespaced_config_map("cm", "default", body)
    assert replaced.data == {"b": "2"} and replaced.metadata.uid == created.metadata.uid
    with pytest.raises(ApiException) as err:  # the same resourceVersion is stale now
        core.replace_namespaced_config_map("cm", "default", body)
    assert err.value.status == 409 and "the object has been modified" in err.value.body


def test_dry_run_validates_and_answers_but_never_persists(kube, core, apps):
    made = core.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All")
    assert made.metadata.name == "dry" and kube.get_object("v1", "configmaps", "default", "dry") is None
    core.create_namespaced_config_map("default", {"metadata": {"name": "kept"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("kept", "default", {"data": {"a": "2"}}, dry_run="All")
    core.delete_namespaced_config_map("kept", "default", dry_run="All")
    assert kube.get_object("v1", "configmaps", "default", "kept")["data"] == {"a": "1"}
    bad = deployment("x")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as err:  # still validated
        apps.create_namespaced_deployment("default", bad, dry_run="All")
    assert err.value.status == 422 and "selector" in status_of(err.value)["message"]


def test_status_subresource_writes_only_status(custom):
    args = ("tokenfleet.io", "v1alpha1", "default", "modeltiers", "st")
    custom.create_namespaced_custom_object(*args[:4], {**tier("st"), "status": {"replicas": 9}})
    assert "status" not in custom.get_namespaced_custom_object(*args)  # status is dropped on create
    custom.patch_namespaced_custom_object_status(*args, {"status": {"replicas": 2}, "spec": {"replicas": 5}})
    after_status = custom.get_namespaced_custom_object(*args)
    assert after_status["status"]["replicas"] == 2 and "replicas" not in after_status["spec"]
    custom.patch_namespaced_custom_object(*args, {"status": {"replicas": 7}, "spec": {"replicas": 4}})
    after_main = custom.get_namespaced_custom_object(*args)
    assert after_main["status"]["replicas"] == 2 and after_main["spec"]["replicas"] == 4


def test_deployment_scale_subresource_reads_and_patches_replicas(apps, kube):
    apps.create_namespaced_deployment("default", deployment("web", replicas=2))
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 5}})
    stored = kube.get_object("apps/v1", "deployments", "default", "web")
    assert stored["spec"]["replicas"] == 5 and stored["metadata"]["generation"] == 2


def test_deployment_controller_reports_replicas_ready(apps):
    apps.create_namespaced_deployment("default", deployment("web", replicas=3))
    status = eventually(lambda: (s := apps.read_namespaced_deployment_status("web", "default").status)
                        .ready_replicas == 3 and s)
    assert (status.replicas, status.available_replicas, status.updated_replicas, status.observed_generation) == \
        (3, 3, 3, 1)
    assert any(c.type == "Available" and c.status == "True" for c in status.conditions)


def test_deployments_get_the_api_servers_defaults_and_canonical_quantities(kube):
    body = deployment("gpu")
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"limits": {"nvidia.com/gpu": 1, "memory": "1024Mi"}, "requests": {"cpu": 0.5}}
    container["ports"] = [{"containerPort": 8000}]
    code, created = raw(kube, "POST", "/apis/apps/v1/namespaces/default/deployments", body)
    assert code == 201
    spec = created["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate" and spec["revisionHistoryLimit"] == 10
    container = spec["template"]["spec"]["containers"][0]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}
    assert container["imagePullPolicy"] == "IfNotPresent" and container["ports"][0]["protocol"] == "TCP"
    assert spec["template"]["spec"]["restartPolicy"] == "Always"


def test_a_resource_quantity_that_is_not_one_is_a_bad_request(kube):
    body = deployment("cpu")
    body["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "lots"}}
    code, status = raw(kube, "POST", "/apis/apps/v1/namespaces/default/deployments", body)
    assert (code, status["reason"]) == (400, "BadRequest") and "quantities must match" in status["message"]


def test_custom_resources_refuse_an_update_without_resource_version(kube, custom):
    custom.create_namespaced_custom_object("tokenfleet.io", "v1alpha1", "default", "modeltiers", tier("u"))
    code, status = raw(kube, "PUT", "/apis/tokenfleet.io/v1alpha1/namespaces/default/modeltiers/u", tier("u"))
    assert code == 422 and "metadata.resourceVersion" in status["message"]
    current = custom.get_namespaced_custom_object("tokenfleet.io", "v1alpha1", "default", "modeltiers", "u")
    current["spec"]["replicas"] = 2
    code, replaced = raw(kube, "PUT", "/apis/tokenfleet.io/v1alpha1/namespaces/default/modeltiers/u", current)
    assert code == 200 and replaced["spec"]["replicas"] == 2 and replaced["metadata"]["generation"] == 2


@pytest.mark.parametrize("body", [
    {"metadata": {"name": "c", "labels": {"n": 1}}},
    {"metadata": {"name": "c", "annotations": {"a": True}}},
    {"metadata": {"name": "c"}, "data": {"port": 8000}},
])
def test_values_that_must_be_strings_are_a_bad_request(kube, body):
    code, status = raw(kube, "POST", "/api/v1/namespaces/default/configmaps", body)
    assert (code, status["reason"]) == (400, "BadRequest") and "cannot unmarshal" in status["message"]
