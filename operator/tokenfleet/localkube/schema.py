"""Custom resources against their CRD's structural openAPIV3Schema: prune, default, validate, as the API server."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from tokenfleet.localkube import cel

_ROOT_KEEP = ("apiVersion", "kind", "metadata")
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


# ---------------------------------------------------------------- pruning and defaulting

def _prune_node(schema: dict, value: Any) -> Any:
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
            return value
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            if props is not None and key in props:
                sub = props[key]
            elif isinstance(extra, dict):
                sub = extra
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                out[key] = item
                continue
            elif schema.get("x-kubernetes-embedded-resource") and key in _ROOT_KEEP:
                out[key] = item
                continue
            else:
                continue  # pruned
            if item is None and not sub.get("nullable"):
                continue  # null in a non-nullable field is pruned (then defaulted), as since Kubernetes 1.20
            out[key] = _prune_node(sub, item)
        for key, sub in (props or {}).items():
            if key not in out and "default" in sub:
                out[key] = _prune_node(sub, copy.deepcopy(sub["default"]))
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune_node(schema["items"], item) for item in value]
    return value


def prune_and_default(schema: dict | None, obj: dict) -> dict:
    """Drop fields the schema does not declare and fill declared defaults; apiVersion/kind/metadata are kept."""
    if not schema:
        return obj
    body = {k: v for k, v in obj.items() if k not in _ROOT_KEEP}
    pruned = _prune_node(schema, body)
    return {**{k: obj[k] for k in _ROOT_KEEP if k in obj}, **pruned}


def unknown_fields(schema: dict | None, obj: dict) -> list[str]:
    """Paths of the fields pruning would drop, for ``fieldValidation=Strict`` (e.g. ``spec.bogus``)."""
    if not schema:
        return []
    found: list[str] = []

    def walk(node: dict, value: Any, path: str) -> None:
        if isinstance(value, dict) and not node.get("x-kubernetes-preserve-unknown-fields"):
            props, extra = node.get("properties") or {}, node.get("additionalProperties")
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                if key in props:
                    walk(props[key], item, where)
                elif isinstance(extra, dict):
                    walk(extra, item, where)
                elif not extra and not (node.get("x-kubernetes-embedded-resource") and key in _ROOT_KEEP):
                    found.append(where)
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for n, item in enumerate(value):
                walk(node["items"], item, f"{path}[{n}]")

    walk(schema, {k: v for k, v in obj.items() if k not in _ROOT_KEEP}, "")
    return found


# ---------------------------------------------------------------- validation

def _fmt(value: Any) -> str:
    """A value as Go's %#v prints it in field errors (objects and arrays by their type name)."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    if value is None:
        return '"null"'
    return json.dumps(value)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


def _type_ok(schema: dict, value: Any) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, (int, str)) and not isinstance(value, bool)
    kind = schema.get("type")
    if kind is None:
        return True
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES.get(kind, object))


class _Validator:
    """Walks one value with its schema, collecting (field, message) pairs the way kube-openapi words them."""

    def __init__(self) -> None:
        self.causes: list[tuple[str, str]] = []

    def fail(self, path: str, value: Any, text: str) -> None:
        self.causes.append((path, f"{path}: Invalid value: {_fmt(value)}: {path} in body {text}"))

    def node(self, schema: dict, value: Any, old: Any, path: str) -> None:
        if value is None:
            if not schema.get("nullable") and schema.get("type"):
                self.fail(path, value, f'must be of type {schema["type"]}: "null"')
            return
        if not _type_ok(schema, value):
            self.fail(path, _type_name(value), f'must be of type {schema.get("type")}: "{_type_name(value)}"')
            return
        self.values(schema, value, path)
        for key in ("allOf", "anyOf", "oneOf", "not"):
            if key in schema:
                self.composition(key, schema[key], value, path)
        if isinstance(value, dict):
            self.object(schema, value, old if isinstance(old, dict) else None, path)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for n, item in enumerate(value):
                old_item = old[n] if isinstance(old, list) and n < len(old) else None
                self.node(schema["items"], item, old_item, f"{path}[{n}]")
        self.rules(schema.get("x-kubernetes-validations") or [], value, old, path)

    def rules(self, rules: list[dict], value: Any, old: Any, path: str) -> None:
        for rule in rules:
            error = cel.check(rule, value, old)
            if error:
                field = (path + rule.get("fieldPath", "")).lstrip(".") or "<nil>"
                words = cel.REASONS.get(rule.get("reason", ""), "Invalid value")
                shown = f" {_fmt(value)}:" if words == "Invalid value" else ""
                self.causes.append((field, f"{field}: {words}:{shown} {error}"))

    def object(self, schema: dict, value: dict, old: dict | None, path: str) -> None:
        for key in schema.get("required") or []:
            if key not in value:
                where = f"{path}.{key}" if path else key
                self.causes.append((where, f"{where}: Required value"))
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key) if key in props else extra if isinstance(extra, dict) else None
            if sub is not None:
                where = (f"{path}.{key}" if path else key) if key in props else f"{path}[{key}]"
                self.node(sub, item, (old or {}).get(key), where)
        count = len(value)
        if "minProperties" in schema and count < schema["minProperties"]:
            self.fail(path, count, f"should have at least {schema['minProperties']} properties")
        if "maxProperties" in schema and count > schema["maxProperties"]:
            self.fail(path, count, f"should have at most {schema['maxProperties']} properties")

    def values(self, schema: dict, value: Any, path: str) -> None:
        if "enum" in schema and value not in schema["enum"]:
            allowed = ", ".join(json.dumps(v) for v in schema["enum"])
            self.causes.append((path, f"{path}: Unsupported value: {_fmt(value)}: supported values: {allowed}"))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self.number(schema, value, path)
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                self.fail(path, value, f"should be at least {schema['minLength']} chars long")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                self.fail(path, value, f"may not be longer than {schema['maxLength']}")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                self.fail(path, value, f"should match '{schema['pattern']}'")
        if isinstance(value, list):
            if "minItems" in schema and len(value) < schema["minItems"]:
                self.fail(path, len(value), f"should have at least {schema['minItems']} items")
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                self.fail(path, len(value), f"should have at most {schema['maxItems']} items")
            unique = schema.get("uniqueItems") or schema.get("x-kubernetes-list-type") == "set"
            if unique and len({json.dumps(v, sort_keys=True) for v in value}) < len(value):
                self.fail(path, value, "shouldn't contain duplicates")

    def number(self, schema: dict, value: float, path: str) -> None:
        if "minimum" in schema:
            low, exclusive = schema["minimum"], schema.get("exclusiveMinimum") is True
            if value < low or (exclusive and value == low):
                self.fail(path, value, f"should be greater than {'' if exclusive else 'or equal to '}{low}")
        if "maximum" in schema:
            high, exclusive = schema["maximum"], schema.get("exclusiveMaximum") is True
            if value > high or (exclusive and value == high):
                self.fail(path, value, f"should be less than {'' if exclusive else 'or equal to '}{high}")
        if schema.get("multipleOf") and (value / schema["multipleOf"]) % 1:
            self.fail(path, value, f"should be a multiple of {schema['multipleOf']}")

    def composition(self, key: str, schemas: Any, value: Any, path: str) -> None:
        def passes(sub: dict) -> bool:
            probe = _Validator()
            probe.node(sub, value, None, path)
            return not probe.causes
        if key == "allOf":
            for sub in schemas:
                self.node(sub, value, None, path)
        elif key == "anyOf" and not any(passes(s) for s in schemas):
            self.fail(path, value, "must validate at least one schema (anyOf)")
        elif key == "oneOf" and sum(passes(s) for s in schemas) != 1:
            self.fail(path, value, "must validate one and only one schema (oneOf)")
        elif key == "not" and passes(schemas):
            self.fail(path, value, "must not validate the schema (not)")


def admit(schema: dict | None, obj: dict, old: dict | None) -> list[tuple[str, str]]:
    """(field, message) pairs for every way ``obj`` breaks ``schema``; empty when it is valid."""
    if not schema:
        return []
    validator = _Validator()
    body = {k: v for k, v in obj.items() if k not in _ROOT_KEEP}
    old_body = {k: v for k, v in (old or {}).items() if k not in _ROOT_KEEP} if old else None
    root = {**schema, "properties": {k: v for k, v in (schema.get("properties") or {}).items() if k not in _ROOT_KEEP}}
    root.pop("x-kubernetes-validations", None)
    validator.node(root, body, old_body, "")
    # rules on the root see apiVersion, kind and the metadata fields CEL may read (name, generateName)
    def whole(o: dict) -> dict:
        meta = {k: v for k, v in (o.get("metadata") or {}).items() if k in ("name", "generateName")}
        return {**o, "metadata": meta}
    validator.rules(schema.get("x-kubernetes-validations") or [], whole(obj), whole(old) if old else None, "")
    return validator.causes
