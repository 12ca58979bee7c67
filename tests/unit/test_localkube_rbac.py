"""localkube's RBAC authorizer (localkube/rbac.py), table-tested against stored roles and bindings."""

from __future__ import annotations

import pytest

from tokenfleet.localkube.rbac import Access, Identity, allowed, forbidden, owner_accesses, rule_allows, verb_of
from tokenfleet.localkube.state import new_state

SA = Identity.for_service_account("ops", "operator")
OTHER = Identity.for_service_account("ops", "someone-else")


@pytest.mark.parametrize("method, named, watch, verb", [
    ("GET", True, False, "get"), ("GET", False, False, "list"), ("GET", False, True, "watch"),
    ("POST", False, False, "create"), ("PUT", True, False, "update"), ("PATCH", True, False, "patch"),
    ("DELETE", True, False, "delete"), ("DELETE", False, False, "deletecollection"),
])
def test_verbs_follow_the_method_and_the_url(method, named, watch, verb):
    assert verb_of(method, named, watch) == verb


RULE = {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"], "verbs": ["get", "patch"]}


@pytest.mark.parametrize("rule, access, allows", [
    (RULE, Access("get", "apps", "deployments"), True),
    (RULE, Access("list", "apps", "deployments"), False),  # verb not listed
    (RULE, Access("get", "", "deployments"), False),  # other group
    (RULE, Access("patch", "apps", "deployments", "scale"), True),
    (RULE, Access("patch", "apps", "deployments", "status"), False),  # a subresource needs its own entry
    ({**RULE, "resources": ["*"]}, Access("patch", "apps", "deployments", "status"), True),
    ({**RULE, "resources": ["*/status"]}, Access("patch", "apps", "deployments", "status"), True),
    ({**RULE, "verbs": ["*"], "apiGroups": ["*"]}, Access("delete", "batch", "deployments"), True),
    ({**RULE, "resourceNames": ["a"]}, Access("get", "apps", "deployments", name="a"), True),
    ({**RULE, "resourceNames": ["a"]}, Access("get", "apps", "deployments", name="b"), False),
])
def test_a_rule_covers_exactly_its_verbs_groups_resources_and_names(rule, access, allows):
    assert rule_allows(rule, access) is allows


def _state():
    state = new_state()
    reg, store = state.registry, state.store

    def put(plural, body, namespace=None):
        store.create(reg.get("rbac.authorization.k8s.io", plural), namespace, body)

    for ns in ("ops", "llm", "other"):
        store.create(reg.get("", "namespaces"), None, {"metadata": {"name": ns}})
    put("clusterroles", {"metadata": {"name": "reader"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
    put("clusterrolebindings", {"metadata": {"name": "reader"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
                                "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": "ops"}]})
    put("roles", {"metadata": {"name": "writer"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]}, "llm")
    put("rolebindings", {"metadata": {"name": "writer"}, "roleRef": {"kind": "Role", "name": "writer"},
                         "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": "ops"}]}, "llm")
    put("rolebindings", {"metadata": {"name": "all-sas"}, "roleRef": {"kind": "ClusterRole", "name": "pods"},
                         "subjects": [{"kind": "Group", "name": "system:serviceaccounts:ops"}]}, "other")
    put("clusterroles", {"metadata": {"name": "pods"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
    return state


@pytest.mark.parametrize("who, access, allows", [
    (SA, Access("get", "", "configmaps", namespace="llm", name="x"), True),  # ClusterRoleBinding: everywhere
    (SA, Access("get", "", "configmaps", namespace="other", name="x"), True),
    (SA, Access("create", "", "configmaps", namespace="llm"), True),  # RoleBinding: its namespace only
    (SA, Access("create", "", "configmaps", namespace="other"), False),
    (SA, Access("list", "", "pods", namespace="other"), True),  # via its group, to a ClusterRole
    (SA, Access("list", "", "pods", namespace="llm"), False),
    (OTHER, Access("get", "", "configmaps", namespace="llm", name="x"), False),  # not bound
    (OTHER, Access("list", "", "pods", namespace="other"), True),  # same namespace's group
])
def test_bindings_grant_their_roles_to_their_subjects_where_they_apply(who, access, allows):
    state = _state()
    assert allowed(state.store, state.registry, who, access) is allows


def test_a_refusal_reads_like_the_api_servers():
    err = forbidden(SA, Access("create", "", "events", namespace="llm"))
    assert err.code == 403 and err.reason == "Forbidden"
    assert err.message == ('events is forbidden: User "system:serviceaccount:ops:operator" cannot create resource '
                           '"events" in API group "" in the namespace "llm"')


def test_blocking_owner_references_need_update_on_the_owners_finalizers():
    state = _state()
    child = {"metadata": {"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "blockOwnerDeletion": True},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"},  # not blocking: no check
    ]}}
    assert owner_accesses(state.registry, child, "llm") == [
        Access("update", "apps", "deployments", "finalizers", "llm", "d")]
