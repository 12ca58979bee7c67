"""Deletion: finalizers hold an object, owner references cascade (background, foreground, orphan), namespaces."""

from __future__ import annotations

from kubernetes import watch

from localkube_support import eventually, raw, tier

TIERS = ("tokenfleet.io", "v1alpha1", "default", "modeltiers")


def owned(name: str, owner: dict, kind: str = "ModelTier", api_version: str = "tokenfleet.io/v1alpha1") -> dict:
    ref = {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    return {"metadata": {"name": name, "ownerReferences": [ref]}}


def test_finalizers_keep_a_deleted_object_until_they_are_removed(kube, custom):
    custom.create_namespaced_custom_object(*TIERS, {**tier("f"), "metadata": {"name": "f", "finalizers": ["a/b"]}})
    custom.delete_namespaced_custom_object(*TIERS, "f")
    held = custom.get_namespaced_custom_object(*TIERS, "f")
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["finalizers"] == ["a/b"]
    code, status = raw(kube, "PATCH", "/apis/tokenfleet.io/v1alpha1/namespaces/default/modeltiers/f",
                       {"metadata": {"finalizers": ["a/b", "c/d"]}}, "application/merge-patch+json")
    assert code == 422 and "no new finalizers" in status["message"]
    custom.patch_namespaced_custom_object(*TIERS, "f", {"metadata": {"finalizers": None}})
    assert kube.get_object("tokenfleet.io/v1alpha1", "modeltiers", "default", "f") is None


def test_watchers_see_the_final_delete_after_the_finalizer_goes(custom):
    custom.create_namespaced_custom_object(*TIERS, {**tier("w"), "metadata": {"name": "w", "finalizers": ["a/b"]}})
    rv = custom.list_namespaced_custom_object(*TIERS)["metadata"]["resourceVersion"]
    custom.delete_namespaced_custom_object(*TIERS, "w")
    custom.patch_namespaced_custom_object(*TIERS, "w", {"metadata": {"finalizers": []}})
    stream = watch.Watch().stream(custom.list_namespaced_custom_object, *TIERS, resource_version=rv,
                                  timeout_seconds=5)
    seen = []
    for event in stream:
        seen.append(event["type"])
        if event["type"] == "DELETED":
            break
    assert seen == ["MODIFIED", "DELETED"]


def test_deleting_an_owner_deletes_its_dependents_transitively(kube, core, custom):
    owner = custom.create_namespaced_custom_object(*TIERS, tier("owner"))
    child = core.create_namespaced_config_map("default", owned("child", owner))
    grandchild = owned("grandchild", {"metadata": {"name": "child", "uid": child.metadata.uid}}, "ConfigMap", "v1")
    core.create_namespaced_config_map("default", grandchild)
    core.create_namespaced_config_map("default", {"metadata": {"name": "bystander"}})
    custom.delete_namespaced_custom_object(*TIERS, "owner")
    eventually(lambda: kube.get_object("v1", "configmaps", "default", "grandchild") is None)
    assert kube.get_object("v1", "configmaps", "default", "child") is None
    assert kube.get_object("v1", "configmaps", "default", "bystander") is not None


def test_a_dependent_written_after_its_owner_was_deleted_is_collected_too(kube, core, custom):
    """A controller racing a deletion can create a child after the owner went; the real GC removes it."""
    owner = custom.create_namespaced_custom_object(*TIERS, tier("late-owner"))
    custom.delete_namespaced_custom_object(*TIERS, "late-owner")
    core.create_namespaced_config_map("default", owned("late-child", owner))
    replaced = custom.create_namespaced_custom_object(*TIERS, tier("late-owner"))  # same name, another uid
    core.create_namespaced_config_map("default", owned("stale-child", owner))
    core.create_namespaced_config_map("default", owned("fresh-child", replaced))
    eventually(lambda: kube.get_object("v1", "configmaps", "default", "late-child") is None)
    eventually(lambda: kube.get_object("v1", "configmaps", "default", "stale-child") is None)
    assert kube.get_object("v1", "configmaps", "default", "fresh-child") is not None


def test_orphan_propagation_keeps_dependents_and_drops_their_owner_reference(kube, core, custom):
    owner = custom.create_namespaced_custom_object(*TIERS, tier("owner"))
    core.create_namespaced_config_map("default", owned("child", owner))
    custom.delete_namespaced_custom_object(*TIERS, "owner", propagation_policy="Orphan")
    eventually(lambda: kube.get_object("tokenfleet.io/v1alpha1", "modeltiers", "default", "owner") is None)
    child = kube.get_object("v1", "configmaps", "default", "child")
    assert child is not None and "ownerReferences" not in child["metadata"]


def test_foreground_propagation_deletes_dependents_before_the_owner(kube, core, custom):
    owner = custom.create_namespaced_custom_object(*TIERS, tier("owner"))
    core.create_namespaced_config_map("default", {**owned("child", owner), "metadata": {
        **owned("child", owner)["metadata"], "finalizers": ["hold/on"]}})
    custom.delete_namespaced_custom_object(*TIERS, "owner", propagation_policy="Foreground")
    eventually(lambda: kube.get_object("v1", "configmaps", "default", "child")["metadata"].get("deletionTimestamp"))
    held = kube.get_object("tokenfleet.io/v1alpha1", "modeltiers", "default", "owner")
    assert held["metadata"]["finalizers"] == ["foregroundDeletion"]  # waits for its dependent
    core.patch_namespaced_config_map("child", "default", {"metadata": {"finalizers": None}})
    eventually(lambda: kube.get_object("tokenfleet.io/v1alpha1", "modeltiers", "default", "owner") is None)


def test_deleting_a_namespace_deletes_what_is_in_it(kube, core):
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "c"}})
    core.delete_namespace("doomed")
    eventually(lambda: kube.get_object("v1", "namespaces", None, "doomed") is None)
    assert kube.get_object("v1", "configmaps", "doomed", "c") is None


def test_delete_answers_200_when_gone_and_202_when_held(kube, core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "gone"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "held", "finalizers": ["x/y"]}})
    assert raw(kube, "DELETE", "/api/v1/namespaces/default/configmaps/gone")[0] == 200
    assert raw(kube, "DELETE", "/api/v1/namespaces/default/configmaps/held")[0] == 202
