"""PATCH over HTTP: JSON patch (with the 422 kopf relies on), merge patch, strategic merge, server-side apply."""

from __future__ import annotations

from localkube_support import deployment, raw, tier

TIER_URL = "/apis/tokenfleet.io/v1alpha1/namespaces/default/modeltiers"
DEPLOY_URL = "/apis/apps/v1/namespaces/default/deployments"
JSON_PATCH = "application/json-patch+json"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def test_json_patch_with_a_failed_test_op_is_422_and_changes_nothing(kube):
    _, created = raw(kube, "POST", TIER_URL, tier("t"))
    rv = created["metadata"]["resourceVersion"]
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "999999"},
           {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]}]
    code, status = raw(kube, "PATCH", f"{TIER_URL}/t", ops, JSON_PATCH)
    assert (code, status["kind"], status["reason"]) == (422, "Status", "Invalid")
    assert "test failed" in status["message"]
    assert kube.get_object("tokenfleet.io/v1alpha1", "modeltiers", "default", "t")["metadata"].get("finalizers") is None
    ops[0]["value"] = rv  # the way kopf adds its finalizer: test the resourceVersion, then add
    code, patched = raw(kube, "PATCH", f"{TIER_URL}/t", ops, JSON_PATCH)
    assert code == 200 and patched["metadata"]["finalizers"] == ["x/y"]


def test_merge_patch_merges_maps_replaces_lists_and_null_removes(kube):
    raw(kube, "POST", TIER_URL, tier("m", engine={"extraArgs": ["--a", "--b"], "maxNumSeqs": 8}))
    patch = {"metadata": {"labels": {"k": "v"}}, "spec": {"engine": {"extraArgs": ["--c"], "maxNumSeqs": None}}}
    code, patched = raw(kube, "PATCH", f"{TIER_URL}/m", patch, MERGE)
    assert code == 200 and patched["metadata"]["labels"] == {"k": "v"}
    assert patched["spec"]["engine"]["extraArgs"] == ["--c"] and "maxNumSeqs" not in patched["spec"]["engine"]


def test_merge_patch_with_a_stale_resource_version_is_a_conflict(kube):
    raw(kube, "POST", TIER_URL, tier("c"))
    code, status = raw(kube, "PATCH", f"{TIER_URL}/c", {"metadata": {"resourceVersion": "1"}, "spec": {}}, MERGE)
    assert (code, status["reason"]) == (409, "Conflict")


def test_strategic_merge_patch_merges_lists_by_their_merge_keys(kube):
    body = deployment("web")
    pod = body["spec"]["template"]["spec"]
    pod["containers"][0].update(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                                ports=[{"containerPort": 80}], volumeMounts=[{"name": "v", "mountPath": "/data"}])
    pod["containers"].append({"name": "side", "image": "busybox:1"})
    pod["volumes"] = [{"name": "v", "emptyDir": {}}]
    raw(kube, "POST", DEPLOY_URL, body)
    patch = {"spec": {"template": {"spec": {
        "containers": [{"name": "main", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                        "ports": [{"containerPort": 8080}],
                        "volumeMounts": [{"mountPath": "/data", "readOnly": True}]},
                       {"name": "side", "$patch": "delete"}],
        "volumes": [{"name": "w", "emptyDir": {}}]}}}}
    code, patched = raw(kube, "PATCH", f"{DEPLOY_URL}/web", patch, STRATEGIC)
    assert code == 200, patched
    pod = patched["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["main"]
    main = pod["containers"][0]
    assert main["image"] == "busybox:1.36"  # untouched fields of a merged item stay
    assert main["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    assert [p["containerPort"] for p in main["ports"]] == [80, 8080]
    assert main["volumeMounts"] == [{"name": "v", "mountPath": "/data", "readOnly": True}]
    assert [v["name"] for v in pod["volumes"]] == ["v", "w"]


def test_strategic_merge_patch_merges_status_conditions_by_type(kube):
    raw(kube, "POST", DEPLOY_URL, deployment("conds"))
    conditions = [{"type": "Available", "status": "False", "reason": "R"}, {"type": "Custom", "status": "True"}]
    raw(kube, "PATCH", f"{DEPLOY_URL}/conds/status", {"status": {"conditions": conditions}}, STRATEGIC)
    patch = {"status": {"conditions": [{"type": "Custom", "status": "False"}]}}
    _, patched = raw(kube, "PATCH", f"{DEPLOY_URL}/conds/status", patch, STRATEGIC)
    by_type = {c["type"]: c["status"] for c in patched["status"]["conditions"]}
    assert by_type["Custom"] == "False" and "Available" in by_type


def test_strategic_merge_patch_is_refused_for_custom_resources(kube):
    raw(kube, "POST", TIER_URL, tier("s"))
    code, status = raw(kube, "PATCH", f"{TIER_URL}/s", {"spec": {}}, STRATEGIC)
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")


def test_server_side_apply_creates_then_updates(kube):
    url = "/api/v1/namespaces/default/configmaps/applied?fieldManager=test"
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: '1'\n"
    code, created = raw(kube, "PATCH", url, body, "application/apply-patch+yaml")
    assert code == 201 and created["data"] == {"a": "1"}
    code, updated = raw(kube, "PATCH", url, body.replace("'1'", "'2'"), "application/apply-patch+yaml")
    assert code == 200 and updated["data"] == {"a": "2"}
    code, _ = raw(kube, "PATCH", url.split("?")[0], body, "application/apply-patch+yaml")
    assert code == 400  # fieldManager is required


def test_patching_a_missing_object_is_404(kube):
    code, status = raw(kube, "PATCH", f"{TIER_URL}/absent", {"spec": {}}, MERGE)
    assert (code, status["reason"]) == (404, "NotFound")
