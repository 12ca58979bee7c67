"""Label selectors (equality and set-based) and field selectors, parsed and matched as the API server does."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

from tokenfleet.localkube.errors import bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*$")


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: ``key op values``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return has and value in self.values
        if self.op in ("!=", "notin"):
            return not has or value not in self.values
        if self.op == "exists":
            return has
        return not has  # "!"


def _split_clauses(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    clauses, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            clauses.append(current)
            current = ""
        else:
            current += ch
    clauses.append(current)
    return [c for c in clauses if c.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse ``a=b,c!=d,e in (x,y),f notin (z),g,!h``; a malformed one is a 400 BadRequest."""
    if not text or not text.strip():
        return []
    requirements = []
    for clause in _split_clauses(text):
        if m := _SET.match(clause):
            values = tuple(v.strip() for v in m["values"].split(",") if v.strip())
            if not values:
                raise bad_request(f"unable to parse requirement: {clause!r}: for 'in', 'notin' operators, "
                                  "values set can't be empty")
            requirements.append(Requirement(m["key"], m["op"], values))
        elif m := _EQ.match(clause):
            op = "!=" if m["op"] == "!=" else "="
            requirements.append(Requirement(m["key"], op, (m["value"],)))
        elif m := _EXISTS.match(clause):
            requirements.append(Requirement(m["key"], "!" if m["neg"] else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: found {clause.strip()!r}, expected a label selector")
    return requirements


def labels_match(requirements: list[Requirement], obj: dict) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


# Field labels each kind supports besides metadata.name / metadata.namespace (as in the API server).
_FIELD_LABELS: dict[str, set[str]] = {
    "pods": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
             "status.phase", "status.podIP", "status.nominatedNodeName"},
    "events": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
               "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
               "reason", "reportingComponent", "source", "type", "regarding.kind", "regarding.name",
               "regarding.namespace", "regarding.uid"},
    "secrets": {"type"},
    "namespaces": {"status.phase"},
}


def _field_value(obj: dict, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if path == "source" and isinstance(value, dict):
        value = value.get("component")
    return "" if value is None else str(value)


@dataclasses.dataclass(frozen=True)
class FieldRequirement:
    path: str
    equal: bool
    value: str

    def matches(self, obj: dict) -> bool:
        return (_field_value(obj, self.path) == self.value) == self.equal


def parse_field_selector(text: str | None, plural: str) -> list[FieldRequirement]:
    """Parse ``metadata.name=x,metadata.namespace!=y``; an unsupported field is a 400 as in the real API."""
    if not text or not text.strip():
        return []
    allowed = {"metadata.name", "metadata.namespace"} | _FIELD_LABELS.get(plural, set())
    result = []
    for clause in _split_clauses(text):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", clause)
        if not m:
            raise bad_request(f"invalid selector: {clause!r}; can't understand {clause!r}")
        path, op, value = m.groups()
        if path not in allowed:
            raise bad_request(f'field label not supported: {path}')
        result.append(FieldRequirement(path, op != "!=", value))
    return result


def fields_match(requirements: list[FieldRequirement], obj: dict) -> bool:
    return all(r.matches(obj) for r in requirements)


def make_filter(label_selector: str | None, field_selector: str | None, plural: str) -> Callable[[dict], bool]:
    """One predicate for both selectors (parse errors raise 400 here, before any answer starts)."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector, plural)
    return lambda obj: labels_match(labels, obj) and fields_match(fields, obj)
