"""The three PATCH flavours of the API: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge."""

from __future__ import annotations

import copy
from typing import Any

from tokenfleet.localkube.errors import bad_request, unprocessable

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class PatchError(Exception):
    """A JSON patch that cannot be applied; the API answers 422."""


# ---------------------------------------------------------------- JSON patch (RFC 6902)

def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    """The node at ``parts`` below ``doc``; a missing step is a PatchError naming ``path``."""
    node = doc
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return node


def _parent(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    return _walk(doc, parts[:-1], path), parts[-1]


def _get(doc: Any, path: str) -> Any:
    return _walk(doc, _pointer(path), path)


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent, key = _parent(doc, parts, path)
    if isinstance(parent, dict) and key in parent:
        return parent.pop(key)
    if isinstance(parent, list) and key.isdigit() and int(key) < len(parent):
        return parent.pop(int(key))
    raise PatchError(f"Unable to remove nonexistent key: {key}: missing value")


def _add(doc: Any, path: str, value: Any, replace: bool = False) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent, key = _parent(doc, parts, path)
    if isinstance(parent, dict):
        if replace and key not in parent:
            raise PatchError(f"replace operation does not apply: doc is missing key: {path}")
        parent[key] = value
    elif isinstance(parent, list):
        if key == "-" and not replace:
            parent.append(value)
        elif key.isdigit() and int(key) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(key)] = value
            else:
                parent.insert(int(key), value)
        else:
            raise PatchError(f"index out of range: {path}")
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def apply_json_patch(doc: dict, ops: Any) -> dict:
    """Apply RFC 6902 operations to a copy of ``doc``; a failed ``test`` or a bad path answers 422."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    try:
        for op in ops:
            kind, path = op.get("op"), op.get("path", "")
            if kind == "add":
                doc = _add(doc, path, copy.deepcopy(op["value"]))
            elif kind == "remove":
                _remove(doc, path)
            elif kind == "replace":
                doc = _add(doc, path, copy.deepcopy(op["value"]), replace=True)
            elif kind == "move":
                doc = _add(doc, path, _remove(doc, op["from"]))
            elif kind == "copy":
                doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
            elif kind == "test":
                try:
                    actual = _get(doc, path)
                except PatchError:
                    actual = None
                if actual != op.get("value"):
                    raise PatchError(f"testing value {path} failed: test failed")
            else:
                raise PatchError(f"Unexpected kind: {kind}")
    except (PatchError, KeyError, TypeError, AttributeError) as err:
        raise unprocessable(f"the server rejected our request due to an error in our request: {err}") from None
    return doc


# ---------------------------------------------------------------- JSON merge patch (RFC 7386)

def apply_merge_patch(doc: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` removes a key, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------- strategic merge patch (built-in kinds)

# Field name -> merge key, as the patchMergeKey tags of the built-in Go types declare them.
MERGE_KEYS: dict[str, str] = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "conditions": "type",
    "imagePullSecrets": "name", "hostAliases": "ip", "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey", "resourceClaims": "name", "secrets": "name",
    "readinessGates": "conditionType", "taints": "key",
}
# Primitive lists merged as sets (patchStrategy merge on a list of strings).
MERGED_SETS = {"finalizers"}


def _merge_key(field: str, items: list) -> str | None:
    if field == "ports":  # container ports merge by containerPort, service ports by port
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def _merge_list(field: str, current: list, patch: list, order: list | None) -> list:
    key = _merge_key(field, current + patch)
    if field in MERGED_SETS and all(not isinstance(i, dict) for i in patch):
        merged = list(current) + [i for i in patch if i not in current]
    elif key is None:
        return copy.deepcopy([i for i in patch if not (isinstance(i, dict) and "$patch" in i)])
    else:
        if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
            return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
        merged = copy.deepcopy(current)
        for item in patch:
            if not isinstance(item, dict):
                raise bad_request(f"strategic merge patch: items of {field} must be objects")
            index = next((n for n, c in enumerate(merged) if isinstance(c, dict) and c.get(key) == item.get(key)), None)
            if item.get("$patch") == "delete":
                if index is not None:
                    merged.pop(index)
            elif index is None:
                merged.append(strategic_merge({}, item))
            else:
                merged[index] = strategic_merge(merged[index], item)
    if order:
        merged = _reorder(merged, order, key)
    return merged


def _reorder(items: list, order: list, key: str | None) -> list:
    """Honour ``$setElementOrder``: listed items in that order first, the others after."""
    ident = (lambda i: i.get(key) if isinstance(i, dict) else i) if key else (lambda i: i)
    wanted = [ident(o) for o in order]
    return sorted(items, key=lambda i: wanted.index(ident(i)) if ident(i) in wanted else len(wanted))


def strategic_merge(doc: Any, patch: Any) -> Any:
    """Kubernetes strategic merge patch for the built-in kinds: lists with a merge key merge item by item."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    retain = patch.get("$retainKeys")
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [i for i in result.get(field) or [] if i not in value]
        elif key.startswith("$"):
            continue
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value, orders.get(key))
        elif isinstance(value, list):
            result[key] = _merge_list(key, [], value, orders.get(key))
        else:
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    for field, order in orders.items():
        if field not in patch and isinstance(result.get(field), list):
            result[field] = _reorder(result[field], order, _merge_key(field, result[field]))
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result
