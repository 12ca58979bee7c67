"""RBAC as the API server enforces it, for tests that run a client under a ServiceAccount's rules.

Off unless ``LocalKube(rbac=True)``. Then a request with ``Authorization: Bearer <token>`` of a
token handed out by ``LocalKube.token_for`` acts as that identity and is authorized by the
Roles, ClusterRoles and their bindings stored in the emulator; a request without a token is
the cluster's admin (how tests set the cluster up with kubectl); an unknown token is 401.

What is emulated (the rbac.authorization.k8s.io/v1 semantics of the RBAC authorizer):
verbs from the method (get/list/watch/create/update/patch/delete/deletecollection),
``resource/subresource`` rules, ``resourceNames``, ``*`` in verbs/apiGroups/resources,
ClusterRoleBindings everywhere and RoleBindings (to a Role or a ClusterRole) in their
namespace, subjects by ServiceAccount, User or Group (``system:serviceaccounts``,
``system:serviceaccounts:<ns>``, ``system:authenticated``). Discovery, OpenAPI and /version are
open to any authenticated identity (the built-in system:discovery role). Also the
OwnerReferencesPermissionEnforcement admission check: setting ``blockOwnerDeletion`` needs
``update`` on the owner's ``finalizers`` subresource. Not emulated: aggregated ClusterRoles,
nonResourceURLs rules, impersonation, escalation checks on writing roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from tokenfleet.localkube.errors import KubeError
from tokenfleet.localkube.resources import Registry
from tokenfleet.localkube.store import Store

RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Identity:
    """Who a request acts as."""

    user: str
    groups: tuple[str, ...] = ("system:authenticated",)
    namespace: str | None = None  # a ServiceAccount's namespace
    service_account: str | None = None

    @classmethod
    def for_service_account(cls, namespace: str, name: str) -> "Identity":
        return cls(f"system:serviceaccount:{namespace}:{name}",
                   ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
                   namespace, name)


@dataclass(frozen=True)
class Access:
    """One request in RBAC's terms."""

    verb: str
    group: str
    resource: str
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None

    @property
    def resource_path(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def verb_of(method: str, named: bool, watch: bool) -> str:
    """The RBAC verb of an HTTP request on a resource URL."""
    if method == "GET":
        return "get" if named else ("watch" if watch else "list")
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def rule_allows(rule: dict, access: Access) -> bool:
    """Whether one PolicyRule covers the access."""
    def has(values, value: str) -> bool:
        return "*" in (values or ()) or value in (values or ())
    if not has(rule.get("verbs"), access.verb) or not has(rule.get("apiGroups"), access.group):
        return False
    resources = rule.get("resources") or ()
    wanted = access.resource_path
    if not ("*" in resources or wanted in resources
            or (access.subresource and f"*/{access.subresource}" in resources)):
        return False
    names = rule.get("resourceNames") or ()
    return not names or (access.name is not None and access.name in names)


def _subject_matches(subject: dict, who: Identity, binding_namespace: str | None) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return who.service_account == subject.get("name") and who.namespace == namespace
    if kind == "User":
        return who.user == subject.get("name")
    if kind == "Group":
        return subject.get("name") in who.groups
    return False


def rules_for(store: Store, registry: Registry, who: Identity, namespace: str | None) -> Iterable[dict]:
    """Every PolicyRule bound to ``who`` that applies in ``namespace`` (None: cluster-scoped)."""
    def objects(plural: str, ns: str | None = None) -> list[dict]:
        res = registry.get(RBAC, plural)
        return list(store.items(res, ns)) if res is not None else []

    cluster_roles = {r["metadata"]["name"]: r for r in objects("clusterroles")}
    bindings = [(b, None) for b in objects("clusterrolebindings")]
    if namespace:
        bindings += [(b, namespace) for b in objects("rolebindings", namespace)]
    for binding, ns in bindings:
        if not any(_subject_matches(s, who, ns) for s in binding.get("subjects") or ()):
            continue
        ref = binding.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole":
            role = cluster_roles.get(ref.get("name"))
        elif ref.get("kind") == "Role" and ns:
            res = registry.get(RBAC, "roles")
            role = store.peek(res, ns, ref.get("name", "")) if res is not None else None
        else:
            role = None
        yield from (role or {}).get("rules") or ()


def allowed(store: Store, registry: Registry, who: Identity, access: Access) -> bool:
    return any(rule_allows(rule, access) for rule in rules_for(store, registry, who, access.namespace))


def forbidden(who: Identity, access: Access) -> KubeError:
    """The API server's 403, word for word in its shape."""
    group = access.group
    what = f"{access.resource}.{group}" if group else access.resource
    named = f' "{access.name}"' if access.name else ""
    where = f' in the namespace "{access.namespace}"' if access.namespace else " at the cluster scope"
    message = (f"{what}{named} is forbidden: User \"{who.user}\" cannot {access.verb} resource "
               f"\"{access.resource_path}\" in API group \"{group}\"{where}")
    return KubeError(403, "Forbidden", message, details={"name": access.name or "", "group": group,
                                                          "kind": access.resource})


def owner_accesses(registry: Registry, obj: dict, namespace: str | None) -> list[Access]:
    """What setting ``obj``'s blocking owner references needs (OwnerReferencesPermissionEnforcement)."""
    out = []
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if not isinstance(ref, dict) or not ref.get("blockOwnerDeletion"):
            continue
        res = registry.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if res is not None:
            out.append(Access("update", res.group, res.plural, "finalizers",
                              namespace if res.namespaced else None, ref.get("name")))
    return out
