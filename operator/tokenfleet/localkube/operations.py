"""The API verbs on top of the store: list with paging, patch (4 types), scale, delete with propagation."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import yaml

from tokenfleet.localkube import patching, schema
from tokenfleet.localkube.controllers import FOREGROUND, ORPHAN
from tokenfleet.localkube.errors import KubeError, bad_request, conflict, gone, not_found, unsupported_media
from tokenfleet.localkube.resources import Resource
from tokenfleet.localkube.store import Store


def relabel(obj: dict, api_version: str) -> dict:
    """The object as served at another version of its resource (no conversion: the schemas are the same)."""
    return obj if obj.get("apiVersion") == api_version else {**obj, "apiVersion": api_version}


def _continue_token(rv: int, namespace: str, name: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"rv": rv, "start": [namespace, name]}).encode()).decode()


def list_objects(store: Store, res: Resource, namespace: str | None, keep: Any, limit: int | None,
                 token: str | None) -> tuple[list[dict], dict]:
    """Items and list metadata; ``limit``/``continue`` page through the objects in (namespace, name) order."""
    items, rv = store.list(res, namespace, keep)
    start = None
    if token:
        try:
            start = tuple(json.loads(base64.urlsafe_b64decode(token.encode()))["start"])
        except (ValueError, KeyError, TypeError):
            raise gone("The provided continue parameter is too old to display a consistent list result. "
                       "You can start a new list without the continue parameter.") from None
        items = [o for o in items if (o["metadata"].get("namespace") or "", o["metadata"]["name"]) > start]
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if limit and len(items) > limit:
        last = items[limit - 1]["metadata"]
        meta["continue"] = _continue_token(rv, last.get("namespace") or "", last["name"])
        meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    return items, meta


def check_strict(res: Resource, body: Any, params: Any, version: str) -> None:
    """``fieldValidation=Strict`` (kubectl's default): unknown fields of a custom resource are a 400."""
    if params.get("fieldValidation") != "Strict" or not res.custom or not isinstance(body, dict):
        return
    unknown = schema.unknown_fields(res.schema(version), body)
    if unknown:
        fields = ", ".join(f'unknown field "{f}"' for f in unknown)
        raise bad_request(f"{res.kind} in version \"{version}\" cannot be handled as a {res.kind}: "
                          f"strict decoding error: {fields}")


def parse_body(raw: bytes, content_type: str) -> Any:
    """A request body: JSON, or YAML for apply patches and YAML uploads; protobuf is refused."""
    if not raw:
        return None
    if "protobuf" in content_type:
        raise unsupported_media(f"the body of the request was in an unknown format - accepted media types "
                                f"include: application/json, application/yaml ({content_type})")
    try:
        if "yaml" in content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as err:
        raise bad_request(f"the body of the request could not be decoded: {err}") from None


# ------------------------------------------------------------------ scale subresource

def _get_path(obj: dict, path: str) -> Any:
    node: Any = obj
    for part in path.strip(".").split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _set_path(obj: dict, path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    node = obj
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _selector_string(res: Resource, obj: dict) -> str | None:
    if not res.custom:
        labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None
    return _get_path(obj, res.scale.label_selector) if res.scale and res.scale.label_selector else None


def scale_of(res: Resource, obj: dict) -> dict:
    """The autoscaling/v1 Scale view of an object with a /scale subresource."""
    meta = obj["metadata"]
    status: dict[str, Any] = {"replicas": _get_path(obj, res.scale.status_replicas) or 0}
    selector = _selector_string(res, obj)
    if selector:
        status["selector"] = selector
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": _get_path(obj, res.scale.spec_replicas) or 0}, "status": status}


def write_scale(store: Store, res: Resource, namespace: str | None, name: str, scale: dict, dry_run: bool,
                version: str) -> dict:
    current = store.get(res, namespace, name)
    wanted_rv = (scale.get("metadata") or {}).get("resourceVersion")
    if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
        raise conflict(res, name)
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise KubeError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                        f"{json.dumps(replicas)}: must be greater than or equal to 0")
    _set_path(current, res.scale.spec_replicas, replicas)
    return scale_of(res, store.update(res, namespace, name, current, None, dry_run, version))


# ------------------------------------------------------------------ patch

def apply_patch(res: Resource, current: dict, content_type: str, patch: Any) -> dict:
    """``current`` with ``patch`` applied according to its media type (strategic only for built-in kinds)."""
    media = content_type.split(";")[0].strip()
    if media == patching.JSON_PATCH:
        return patching.apply_json_patch(current, patch)
    if not isinstance(patch, dict):
        raise bad_request("the patch must be a JSON object")
    if media == patching.MERGE_PATCH:
        return patching.apply_merge_patch(current, patch)
    if media in (patching.STRATEGIC_PATCH, patching.APPLY_PATCH):
        if res.custom:
            if media == patching.APPLY_PATCH:
                return patching.apply_merge_patch(current, patch)
            raise unsupported_media("strategic merge patch is not supported for custom resources; "
                                    "use a JSON merge patch or a JSON patch")
        return patching.strategic_merge(current, patch)
    raise unsupported_media(f"the media type {content_type!r} is not supported for PATCH; use "
                            f"{patching.JSON_PATCH}, {patching.MERGE_PATCH} or {patching.STRATEGIC_PATCH}")


def patch(store: Store, res: Resource, namespace: str | None, name: str, sub: str | None, content_type: str,
          body: Any, params: dict, version: str) -> tuple[dict, int]:
    """PATCH an object (or its status/scale); a resourceVersion in the patch is a precondition (409)."""
    dry_run = params.get("dryRun") == "All"
    is_apply = content_type.startswith(patching.APPLY_PATCH)
    if is_apply and not params.get("fieldManager"):
        raise bad_request("PATCH: fieldManager is required for apply requests")
    current = store.peek(res, namespace, name)
    if current is None:
        if is_apply and sub is None:
            created = store.create(res, namespace, {**(body or {}), "metadata": {**(body or {}).get(
                "metadata", {}), "name": name}}, dry_run, version)
            return created, 201
        raise not_found(res, name)
    current = copy.deepcopy(current)
    if sub == "scale":
        new_scale = apply_patch(res, scale_of(res, current), content_type, body)
        return write_scale(store, res, namespace, name, new_scale, dry_run, version), 200
    patched = apply_patch(res, relabel(current, res.api_version(version)), content_type, body)
    if not isinstance(patched, dict):
        raise bad_request("the patched object is not a JSON object")
    check_strict(res, patched, params, version)
    meta = patched.setdefault("metadata", {})
    if meta.get("resourceVersion") not in (None, "", current["metadata"]["resourceVersion"]):
        raise conflict(res, name)
    meta["resourceVersion"] = current["metadata"]["resourceVersion"]
    return store.update(res, namespace, name, patched, sub, dry_run, version), 200


# ------------------------------------------------------------------ delete

def delete_options(params: dict, body: Any) -> dict:
    """DeleteOptions from the query and the (optional) body; the body wins, as in the API server."""
    options = {"propagationPolicy": params.get("propagationPolicy"), "dryRun": params.get("dryRun") == "All",
               "preconditions": None}
    if isinstance(body, dict):
        if body.get("propagationPolicy"):
            options["propagationPolicy"] = body["propagationPolicy"]
        if body.get("orphanDependents") is not None and not body.get("propagationPolicy"):
            options["propagationPolicy"] = "Orphan" if body["orphanDependents"] else "Background"
        if "All" in (body.get("dryRun") or []):
            options["dryRun"] = True
        options["preconditions"] = body.get("preconditions")
    policy = options["propagationPolicy"]
    if policy not in (None, "Background", "Foreground", "Orphan"):
        raise bad_request(f"propagationPolicy: Unsupported value: {policy!r}: supported values: "
                          '"Background", "Foreground", "Orphan"')
    return options


def delete(store: Store, res: Resource, namespace: str | None, name: str, options: dict) -> tuple[dict, int]:
    """DELETE one object: 200 when it is gone, 202 while finalizers (or a foreground cascade) hold it."""
    extra = {"Orphan": ORPHAN, "Foreground": FOREGROUND}.get(options.get("propagationPolicy") or "")
    obj, gone_now = store.delete(res, namespace, name, options.get("preconditions"), options["dryRun"], extra)
    return obj, 200 if gone_now else 202
