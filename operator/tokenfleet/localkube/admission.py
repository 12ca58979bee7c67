"""What the API server does to an object before storing it: metadata, generation, status rules, validation."""

from __future__ import annotations

import copy
import datetime
import re
import uuid

from tokenfleet.localkube import builtins, schema
from tokenfleet.localkube.errors import KubeError, bad_request, invalid
from tokenfleet.localkube.resources import Resource

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
# Kinds whose names must be DNS labels rather than subdomains.
_LABEL_NAMED = {"namespaces", "services"}
# Metadata fields a client cannot change after creation.
_IMMUTABLE_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def now() -> str:
    """The current time in RFC 3339 at second precision, as metav1.Time serialises."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_name(res: Resource, name: str) -> list[tuple[str, str]]:
    pattern, what = ((_DNS_LABEL, "RFC 1123 label") if res.plural in _LABEL_NAMED
                     else (_DNS_SUBDOMAIN, "RFC 1123 subdomain"))
    limit = 63 if res.plural in _LABEL_NAMED else 253
    if not pattern.match(name) or len(name) > limit:
        return [("metadata.name", f'metadata.name: Invalid value: "{name}": a lowercase {what} must consist of '
                 "lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                 "character")]
    return []


def _check_labels(meta: dict) -> list[tuple[str, str]]:
    causes = []
    for key, value in (meta.get("labels") or {}).items():
        name = key.rsplit("/", 1)[-1]
        if not _LABEL_NAME.match(name) or len(name) > 63:
            causes.append(("metadata.labels", f'metadata.labels: Invalid value: "{key}": name part must consist of '
                           "alphanumeric characters, '-', '_' or '.'"))
        if not isinstance(value, str) or not _LABEL_VALUE.match(value) or len(value) > 63:
            causes.append(("metadata.labels", f'metadata.labels: Invalid value: "{value}": a valid label must be '
                           "an empty string or consist of alphanumeric characters, '-', '_' or '.'"))
    return causes


def _body_checks(res: Resource, obj: dict) -> None:
    if not isinstance(obj, dict):
        raise bad_request("the body of the request is not a JSON object")
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if kind and kind != res.kind:
        raise bad_request(f"the API version in the data ({api_version}) does not match the expected API version "
                          f"({res.api_version()}) or the kind {kind!r} does not match {res.kind!r}")
    if not isinstance(obj.get("metadata", {}), dict):
        raise bad_request("metadata must be an object")
    string_maps = [("metadata.labels", (obj.get("metadata") or {}).get("labels")),
                   ("metadata.annotations", (obj.get("metadata") or {}).get("annotations"))]
    if res.plural in ("configmaps", "secrets") and not res.group:
        string_maps += [("data", obj.get("data")), ("binaryData", obj.get("binaryData")),
                        ("stringData", obj.get("stringData"))]
    for field, value in string_maps:  # what Go's JSON decoding of the typed object refuses: a 400, not a 422
        if value is not None and (not isinstance(value, dict) or
                                  not all(isinstance(v, str) for v in value.values())):
            raise bad_request(f"{res.kind} in version \"{res.version}\" cannot be handled as a {res.kind}: "
                              f"json: cannot unmarshal {field} into Go struct field of type map[string]string")


def _drop_empty_meta(meta: dict) -> None:
    """Empty maps and lists in metadata are not stored (Go's omitempty), nor is a null."""
    for key in ("labels", "annotations", "finalizers", "ownerReferences", "generateName"):
        if key in meta and not meta[key]:
            del meta[key]


def _validate(res: Resource, obj: dict, old: dict | None, version: str) -> None:
    name = obj["metadata"].get("name", "")
    causes = _check_name(res, name) + _check_labels(obj["metadata"])
    if res.custom:
        causes += schema.admit(res.schema(version), obj, old)
    else:
        causes += builtins.validate(res, obj)
    if causes:
        raise invalid(res, name, causes)


def prepare_create(res: Resource, body: dict, namespace: str | None, version: str) -> dict:
    """A new object: identity and timestamps stamped, status reset where a subresource owns it, validated."""
    _body_checks(res, body)
    obj = copy.deepcopy(body)
    meta = obj.setdefault("metadata", {})
    obj["apiVersion"], obj["kind"] = res.api_version(version), res.kind
    if not meta.get("name"):
        if meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        else:
            raise invalid(res, "", [("metadata.name", "metadata.name: Required value: name or generateName is "
                                     "required")])
    if res.namespaced:
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                              "request")
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
        meta.pop(key, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now()
    if res.generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    if res.status:
        obj.pop("status", None)
    _drop_empty_meta(meta)
    builtins.default(res, obj, None)
    if res.custom:
        obj = schema.prune_and_default(res.schema(version), obj)
    _validate(res, obj, None, version)
    return obj


def _spec_part(res: Resource, obj: dict) -> dict:
    """Everything that bumps metadata.generation when it changes: all but metadata (and status if a subresource)."""
    return {k: v for k, v in obj.items()
            if k not in ("metadata", "apiVersion", "kind") and not (k == "status" and res.status)}


def prepare_update(res: Resource, current: dict, body: dict, subresource: str | None, version: str) -> dict:
    """The object an update stores: immutable fields kept, status rules of the subresource applied, validated."""
    _body_checks(res, body)
    if subresource == "status":
        new = copy.deepcopy(current)
        if "status" in body:
            new["status"] = copy.deepcopy(body["status"])
        else:
            new.pop("status", None)
    else:
        new = copy.deepcopy(body)
        if res.status:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
    meta, old_meta = new.setdefault("metadata", {}), current["metadata"]
    for key in ("name", "namespace"):
        if meta.get(key, old_meta.get(key)) != old_meta.get(key):
            raise invalid(res, old_meta["name"], [(f"metadata.{key}", f'metadata.{key}: Invalid value: '
                                                   f'"{meta.get(key)}": field is immutable')])
    for key in ("name", "namespace", *_IMMUTABLE_META, "generation"):
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    meta.pop("managedFields", None)
    _drop_empty_meta(meta)
    new["apiVersion"], new["kind"] = res.api_version(version), res.kind
    if old_meta.get("deletionTimestamp"):
        added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
        if added:
            raise KubeError(422, "Invalid", f'{res.qualified_kind} "{old_meta["name"]}" is invalid: '
                            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being "
                            "deleted, found new finalizers " + str(sorted(added)))
    builtins.default(res, new, current)
    if res.custom:
        new = schema.prune_and_default(res.schema(version), new)
    _validate(res, new, current, version)
    if res.generation and _spec_part(res, new) != _spec_part(res, current):
        meta["generation"] = int(old_meta.get("generation", 1)) + 1
    return new


def mark_deleted(res: Resource, current: dict) -> dict:
    """The object once a DELETE is pending on finalizers: deletionTimestamp set, generation bumped."""
    new = copy.deepcopy(current)
    meta = new["metadata"]
    if not meta.get("deletionTimestamp"):
        meta["deletionTimestamp"] = now()
        meta["deletionGracePeriodSeconds"] = 0
        if res.generation:
            meta["generation"] = int(meta.get("generation", 1)) + 1
    return new
