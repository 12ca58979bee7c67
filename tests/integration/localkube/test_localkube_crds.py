"""CRDs: registered and discoverable when POSTed, served at once, schema-validated, and taking objects with them."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube_support import eventually, raw, tier

WIDGETS = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com", "scope": "Cluster",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList",
                  "shortNames": ["wd"], "categories": ["toys"]},
        "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                          "spec": {"type": "object", "properties": {
                              "size": {"type": "integer", "default": 3, "minimum": 1},
                              "color": {"type": "string", "enum": ["red", "blue"]},
                              "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                          }},
                          "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}],
    },
}
WIDGET_URL = "/apis/example.com/v1/widgets"


def test_a_posted_crd_is_discoverable_and_served_at_once(kube, api):
    client.ApiextensionsV1Api(api).create_custom_resource_definition(WIDGETS)
    _, groups = raw(kube, "GET", "/apis")
    assert {"groupVersion": "example.com/v1", "version": "v1"} in \
        next(g for g in groups["groups"] if g["name"] == "example.com")["versions"]
    _, group = raw(kube, "GET", "/apis/example.com")
    assert group["preferredVersion"]["version"] == "v1"
    _, resources = raw(kube, "GET", "/apis/example.com/v1")
    by_name = {r["name"]: r for r in resources["resources"]}
    assert by_name["widgets"]["namespaced"] is False and by_name["widgets"]["shortNames"] == ["wd"]
    assert by_name["widgets"]["categories"] == ["toys"] and "watch" in by_name["widgets"]["verbs"]
    assert "widgets/status" in by_name
    code, created = raw(kube, "POST", WIDGET_URL, {"apiVersion": "example.com/v1", "kind": "Widget",
                                                   "metadata": {"name": "w"}, "spec": {}})
    assert code == 201 and created["spec"]["size"] == 3


def test_a_crd_becomes_established(kube, api):
    crds = client.ApiextensionsV1Api(api)
    crds.create_custom_resource_definition(WIDGETS)
    conditions = eventually(lambda: crds.read_custom_resource_definition("widgets.example.com").status.conditions)
    assert {c.type: c.status for c in conditions}["Established"] == "True"


def test_aggregated_discovery_lists_custom_resources(kube):
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    code, doc = raw(kube, "GET", "/apis", accept=accept)
    assert code == 200 and doc["kind"] == "APIGroupDiscoveryList"
    group = next(i for i in doc["items"] if i["metadata"]["name"] == "tokenfleet.io")
    tiers = next(r for r in group["versions"][0]["resources"] if r["resource"] == "modeltiers")
    assert tiers["scope"] == "Namespaced" and tiers["shortNames"] == ["mt", "tier"]
    assert [s["subresource"] for s in tiers["subresources"]] == ["status"]


def test_deleting_a_crd_removes_its_objects_and_its_endpoint(kube, api):
    crds = client.ApiextensionsV1Api(api)
    crds.create_custom_resource_definition(WIDGETS)
    raw(kube, "POST", WIDGET_URL, {"metadata": {"name": "w"}, "spec": {}})
    crds.delete_custom_resource_definition("widgets.example.com")
    assert raw(kube, "GET", WIDGET_URL)[0] == 404
    crds.create_custom_resource_definition(WIDGETS)
    assert raw(kube, "GET", WIDGET_URL)[1]["items"] == []


def test_unknown_fields_are_pruned_unless_preserved(kube):
    raw(kube, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGETS)
    body = {"metadata": {"name": "w"}, "spec": {"size": 2, "bogus": 1, "free": {"any": {"thing": 1}}},
            "extra": True}
    _, created = raw(kube, "POST", WIDGET_URL, body)
    assert created["spec"] == {"size": 2, "free": {"any": {"thing": 1}}} and "extra" not in created


def test_schema_defaults_are_applied(custom):
    created = custom.create_namespaced_custom_object("tokenfleet.io", "v1alpha1", "default", "modeltiers",
                                                     tier("d", gpu={"type": "nvidia-l4"}))
    assert created["spec"]["gpu"]["count"] == 1 and created["spec"]["model"]["maxModelLen"] == 8192


@pytest.mark.parametrize(("spec", "message"), [
    ({"gpu": {"count": 0}}, "spec.gpu.count: Invalid value: 0: spec.gpu.count in body should be greater than or equal "
                            "to 1"),
    ({"quantization": {"weights": "int3"}}, 'spec.quantization.weights: Unsupported value: "int3": supported values: '
                                            '"none", "fp8", "int8", "awq", "gptq", "int4"'),
    ({"gpu": {"hourlyCostUSD": -1}}, "spec.gpu.hourlyCostUSD in body should be greater than or equal to 0"),
    ({"model": {"source": "x", "parametersB": 0}}, "spec.model.parametersB in body should be greater than 0"),
    ({"model": {"source": "x"}}, "spec.model.parametersB: Required value"),
    ({"engine": {"maxNumSeqs": "many"}}, 'spec.engine.maxNumSeqs: Invalid value: "string": spec.engine.maxNumSeqs in '
                                         'body must be of type integer: "string"'),
    ({"scaling": {"scaleToZeroAfter": "soon"}}, "spec.scaling.scaleToZeroAfter in body should match"),
    ({"scaling": {"minReplicas": 5, "maxReplicas": 2}}, 'spec.scaling: Invalid value: "object": minReplicas must not '
                                                         "exceed maxReplicas"),
])
def test_invalid_custom_resources_are_422_naming_the_field(kube, spec, message):
    body = tier("bad", **spec)
    code, status = raw(kube, "POST", "/apis/tokenfleet.io/v1alpha1/namespaces/default/modeltiers", body)
    assert (code, status["reason"]) == (422, "Invalid"), status
    assert status["message"].startswith('ModelTier.tokenfleet.io "bad" is invalid: ')
    assert message in status["message"]
    assert status["details"]["causes"][0]["field"].startswith("spec.")


def test_nullable_fields_accept_null_and_others_drop_it(custom):
    created = custom.create_namespaced_custom_object("tokenfleet.io", "v1alpha1", "default", "modeltiers",
                                                     tier("n", model={"source": "x", "parametersB": 1,
                                                                      "servedName": None, "maxModelLen": None}))
    assert created["spec"]["model"]["servedName"] is None  # nullable: kept
    assert created["spec"]["model"]["maxModelLen"] == 8192  # not nullable: pruned, then defaulted


def test_cel_rules_of_the_cache_policy_crd_are_evaluated(custom):
    args = ("tokenfleet.io", "v1alpha1", "default", "cachepolicies")
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(*args, {"apiVersion": "tokenfleet.io/v1alpha1", "kind": "CachePolicy",
                                                       "metadata": {"name": "r"}, "spec": {"store": {"type": "redis"}}})
    assert err.value.status == 422
    assert "store.redisSecretRef is required when store.type is redis" in json.loads(err.value.body)["message"]
    ok = {"type": "redis", "redisSecretRef": {"name": "s", "key": "url"}}
    custom.create_namespaced_custom_object(*args, {"apiVersion": "tokenfleet.io/v1alpha1", "kind": "CachePolicy",
                                                   "metadata": {"name": "r"}, "spec": {"store": ok}})


def test_updates_are_validated_too(custom):
    args = ("tokenfleet.io", "v1alpha1", "default", "modeltiers")
    custom.create_namespaced_custom_object(*args, tier("u"))
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(*args, "u", {"spec": {"gpu": {"count": 0}}})
    assert err.value.status == 422


def test_a_crd_with_a_wrong_name_is_invalid(kube):
    bad = {**WIDGETS, "metadata": {"name": "gadgets.example.com"}}
    code, status = raw(kube, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", bad)
    assert (code, status["reason"]) == (422, "Invalid") and "metadata.name" in status["message"]
