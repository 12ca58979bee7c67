"""The resource registry of the emulator: built-in kinds and the ones CustomResourceDefinitions add."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class ScalePaths:
    """Where a resource keeps what its ``/scale`` subresource reads and writes."""

    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = ".status.selector"


@dataclasses.dataclass
class Resource:
    """One served resource (group + plural), with everything discovery and validation need."""

    group: str
    versions: list[str]  # served versions, the storage (preferred) one first
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False  # a /status subresource
    scale: ScalePaths | None = None  # a /scale subresource
    generation: bool = False  # metadata.generation is maintained
    schemas: dict[str, dict] = dataclasses.field(default_factory=dict)  # version -> openAPIV3Schema
    columns: dict[str, list[dict]] = dataclasses.field(default_factory=dict)  # version -> printer columns
    custom: bool = False  # defined by a CRD
    extra_subresources: tuple[str, ...] = ()  # e.g. namespaces/finalize

    def __post_init__(self) -> None:
        self.singular = self.singular or self.kind.lower()

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def version(self) -> str:
        return self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        version = version or self.version
        return f"{self.group}/{version}" if self.group else version

    @property
    def qualified(self) -> str:
        """``modeltiers.tokenfleet.io``, ``deployments.apps``, ``configmaps``: as in API error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``ModelTier.tokenfleet.io``: as in 422 Invalid messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def verbs(self) -> list[str]:
        return ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

    def subresources(self) -> list[str]:
        names = (["status"] if self.status else []) + (["scale"] if self.scale else [])
        return names + list(self.extra_subresources)

    def schema(self, version: str | None = None) -> dict | None:
        return self.schemas.get(version or self.version)


def _core(plural: str, kind: str, *short: str, **kw: Any) -> Resource:
    return Resource(group="", versions=["v1"], plural=plural, kind=kind, short_names=short, **kw)


def _res(group: str, version: str, plural: str, kind: str, *short: str, **kw: Any) -> Resource:
    return Resource(group=group, versions=[version], plural=plural, kind=kind, short_names=short, **kw)


def builtin_resources() -> list[Resource]:
    """The built-in kinds the emulator serves; anything else comes from CRDs."""
    return [
        _core("namespaces", "Namespace", "ns", namespaced=False, status=True, extra_subresources=("finalize",)),
        _core("configmaps", "ConfigMap", "cm"),
        _core("secrets", "Secret"),
        _core("services", "Service", "svc", status=True, categories=("all",)),
        _core("serviceaccounts", "ServiceAccount", "sa"),
        _core("events", "Event", "ev"),
        _core("pods", "Pod", "po", status=True, generation=True, categories=("all",)),
        _core("endpoints", "Endpoints", "ep"),
        _core("persistentvolumeclaims", "PersistentVolumeClaim", "pvc", status=True),
        _res("apps", "v1", "deployments", "Deployment", "deploy", status=True, scale=ScalePaths(),
             generation=True, categories=("all",)),
        _res("apps", "v1", "statefulsets", "StatefulSet", "sts", status=True, scale=ScalePaths(),
             generation=True, categories=("all",)),
        _res("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", "hpa", status=True,
             generation=True, categories=("all",)),
        _res("events.k8s.io", "v1", "events", "Event", "ev"),
        _res("coordination.k8s.io", "v1", "leases", "Lease"),
        _res("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", "pdb", status=True, generation=True),
        _res("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", "netpol", generation=True),
        _res("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        _res("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        _res("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
        _res("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
        _res("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", "crd", "crds",
             namespaced=False, status=True, generation=True),
    ]


def resource_from_crd(crd: dict) -> Resource:
    """The resource a CustomResourceDefinition declares (all served versions, storage version first)."""
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec.get("versions", []) if v.get("served", True)]
    served.sort(key=lambda v: not v.get("storage", False))
    versions = [v["name"] for v in served]
    subs = served[0].get("subresources") or {} if served else {}
    scale = None
    if "scale" in subs:
        sc = subs["scale"] or {}
        scale = ScalePaths(sc.get("specReplicasPath", ".spec.replicas"), sc.get("statusReplicasPath", ".status.replicas"),
                           sc.get("labelSelectorPath"))
    return Resource(
        group=spec["group"], versions=versions, plural=names["plural"], kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced", singular=names.get("singular", ""),
        short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
        status="status" in subs, scale=scale, generation=True, custom=True,
        schemas={v["name"]: (v.get("schema") or {}).get("openAPIV3Schema") or {} for v in served},
        columns={v["name"]: v.get("additionalPrinterColumns") or [] for v in served},
    )


class Registry:
    """All served resources, keyed by (group, plural); CRDs come and go at run time."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Resource] = {r.key: r for r in builtin_resources()}

    def all(self) -> list[Resource]:
        return list(self._by_key.values())

    def get(self, group: str, plural: str) -> Resource | None:
        return self._by_key.get((group, plural))

    def lookup(self, group: str, version: str, plural: str) -> Resource | None:
        """The resource served at /apis/<group>/<version>/<plural>, if that version is served."""
        res = self._by_key.get((group, plural))
        return res if res is not None and version in res.versions else None

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        group, _, version = api_version.rpartition("/")
        for res in self._by_key.values():
            if res.group == group and res.kind == kind and version in res.versions:
                return res
        return None

    def add(self, res: Resource) -> None:
        self._by_key[res.key] = res

    def remove(self, key: tuple[str, str]) -> None:
        self._by_key.pop(key, None)

    def group_versions(self) -> dict[str, list[str]]:
        """Group -> served versions (preferred first), core group '' included, in a stable order."""
        groups: dict[str, list[str]] = {}
        for res in self._by_key.values():
            versions = groups.setdefault(res.group, [])
            for v in res.versions:
                if v not in versions:
                    versions.append(v)
        return groups

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self._by_key.values() if r.group == group and version in r.versions]
