"""Discovery documents: /version, /api, /apis and per group-version resource lists, legacy and aggregated (v2)."""

from __future__ import annotations

from tokenfleet.localkube.resources import Registry, Resource

AGGREGATED = "as=APIGroupDiscoveryList"
_SUB_VERBS = ["get", "patch", "update"]

VERSION = {
    "major": "1", "minor": "35", "gitVersion": "v1.35.0-localkube", "gitCommit": "localkube",
    "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc",
    "platform": "linux/amd64",
}


def _gv(group: str, version: str) -> dict:
    return {"groupVersion": f"{group}/{version}" if group else version, "version": version}


def api_versions(address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}


def api_group(group: str, versions: list[str]) -> dict:
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [_gv(group, v) for v in versions],
            "preferredVersion": _gv(group, versions[0])}


def api_group_list(registry: Registry) -> dict:
    groups = [api_group(g, vs) for g, vs in registry.group_versions().items() if g]
    for group in groups:
        del group["kind"], group["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _entries(res: Resource, version: str) -> list[dict]:
    main = {"name": res.plural, "singularName": res.singular, "namespaced": res.namespaced, "kind": res.kind,
            "verbs": res.verbs}
    if res.short_names:
        main["shortNames"] = list(res.short_names)
    if res.categories:
        main["categories"] = list(res.categories)
    entries = [main]
    for sub in res.subresources():
        entry = {"name": f"{res.plural}/{sub}", "singularName": "", "namespaced": res.namespaced, "kind": res.kind,
                 "verbs": _SUB_VERBS if sub != "finalize" else ["update"]}
        if sub == "scale":
            entry.update(group="autoscaling", version="v1", kind="Scale")
        entries.append(entry)
    return entries


def resource_list(registry: Registry, group: str, version: str) -> dict | None:
    """The APIResourceList of /api/v1 or /apis/<group>/<version>; None if nothing is served there."""
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    entries = [e for r in resources for e in _entries(r, version)]
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": entries}


def _aggregated_resource(res: Resource, version: str) -> dict:
    entry = {"resource": res.plural, "responseKind": {"group": res.group, "version": version, "kind": res.kind},
             "scope": "Namespaced" if res.namespaced else "Cluster", "singularResource": res.singular,
             "verbs": res.verbs}
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if res.categories:
        entry["categories"] = list(res.categories)
    subs = []
    for sub in res.subresources():
        kind = {"group": "autoscaling", "version": "v1", "kind": "Scale"} if sub == "scale" else entry["responseKind"]
        subs.append({"subresource": sub, "responseKind": kind,
                     "verbs": _SUB_VERBS if sub != "finalize" else ["update"]})
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(registry: Registry, core: bool, api_version: str) -> dict:
    """APIGroupDiscoveryList for /api (core) or /apis (every named group), as kubectl 1.35 asks first."""
    items = []
    for group, versions in registry.group_versions().items():
        if (group == "") != core:
            continue
        items.append({
            "metadata": {"name": group, "creationTimestamp": None},
            "versions": [{"version": v, "freshness": "Current",
                          "resources": [_aggregated_resource(r, v) for r in registry.in_group_version(group, v)]}
                         for v in versions],
        })
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


def aggregated_version(accept: str) -> str | None:
    """The apidiscovery.k8s.io version the client asked for in Accept (v2 preferred), or None for legacy."""
    if AGGREGATED not in accept:
        return None
    for media in accept.split(","):
        if AGGREGATED in media and "g=apidiscovery.k8s.io" in media:
            params = dict(p.strip().split("=", 1) for p in media.split(";")[1:] if "=" in p)
            return f"apidiscovery.k8s.io/{params.get('v', 'v2')}"
    return None


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root(registry: Registry) -> dict:
    """/openapi/v3: one document per group-version (kubectl reads it to learn that fieldValidation works)."""
    return {"paths": {_gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash=localkube"}
                      for g, versions in registry.group_versions().items() for v in versions}}


def openapi_v3_group_version(registry: Registry, group: str, version: str) -> dict | None:
    """A minimal OpenAPI v3 document: PATCH operations that declare the ``fieldValidation`` parameter,
    and the schemas of custom resources (for ``kubectl explain``).

    kubectl then validates on the server (``fieldValidation=Strict``); since no PATCH operation lists the
    strategic-merge media type, it patches custom resources with a JSON merge patch, as with a real server.
    """
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    paths, schemas = {}, {}
    for res in resources:
        if res.custom and res.schema(version):  # for kubectl explain, as the API server publishes CRDs
            reverse = ".".join(reversed(res.group.split(".")))
            schemas[f"{reverse}.{version}.{res.kind}"] = {
                **res.schema(version), "x-kubernetes-group-version-kind": [
                    {"group": res.group, "version": version, "kind": res.kind}]}
        scope = "/namespaces/{namespace}" if res.namespaced else ""
        gvk = {"group": res.group, "version": version, "kind": res.kind}
        paths[f"/{_gv_path(group, version)}{scope}/{res.plural}/{{name}}"] = {
            "patch": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch", "parameters": [param],
                      "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (localkube)", "version": "v1.35.0"}, "paths": paths,
            "components": {"schemas": schemas}}
