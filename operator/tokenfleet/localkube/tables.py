"""``Table`` responses for ``kubectl get``: CRD printer columns (JSONPath) and the columns of built-in kinds."""

from __future__ import annotations

import datetime
import json
from typing import Any, Callable

from tokenfleet.localkube import jsonpath
from tokenfleet.localkube.resources import Resource

TABLE_ACCEPT = "as=Table"
_NAME = {"name": "Name", "type": "string", "format": "name", "priority": 0,
         "description": "Name must be unique within a namespace."}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "priority": 0,
        "description": "CreationTimestamp is a timestamp representing the server time when this object was created."}


def human_duration(seconds: float) -> str:
    """Ages as kubectl prints them (apimachinery's HumanDuration): 45s, 3m20s, 2h5m, 4d3h, 2y10d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def _age(timestamp: Any) -> str:
    try:
        then = datetime.datetime.strptime(str(timestamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())


def _cell(column: dict, obj: dict) -> Any:
    """One cell as the API server's CRD table convertor makes it: typed, the first match only, None if absent."""
    try:
        values = jsonpath.find(obj, column["jsonPath"])
    except ValueError:
        return None
    if not values or values[0] is None:
        return None
    value, kind = values[0], column.get("type", "string")
    if kind == "date":
        return _age(value)
    if kind == "string":
        return value if isinstance(value, str) else json.dumps(value)
    if kind == "integer":
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    return value


def _ready(obj: dict) -> str:
    status = obj.get("status") or {}
    return f"{status.get('readyReplicas', 0)}/{(obj.get('spec') or {}).get('replicas', 0)}"


def _ports(obj: dict) -> str:
    ports = (obj.get("spec") or {}).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


# Built-in kinds: (column, function of the object); Name comes first and Age last for all of them.
_BUILTIN: dict[str, list[tuple[dict, Callable[[dict], Any]]]] = {
    "deployments": [
        ({"name": "Ready", "type": "string"}, _ready),
        ({"name": "Up-to-date", "type": "integer"}, lambda o: (o.get("status") or {}).get("updatedReplicas", 0)),
        ({"name": "Available", "type": "integer"}, lambda o: (o.get("status") or {}).get("availableReplicas", 0)),
    ],
    "namespaces": [({"name": "Status", "type": "string"}, lambda o: (o.get("status") or {}).get("phase", ""))],
    "configmaps": [({"name": "Data", "type": "integer"}, lambda o: len(o.get("data") or {}) + len(
        o.get("binaryData") or {}))],
    "secrets": [({"name": "Type", "type": "string"}, lambda o: o.get("type", "")),
                ({"name": "Data", "type": "integer"}, lambda o: len(o.get("data") or {}))],
    "services": [
        ({"name": "Type", "type": "string"}, lambda o: (o.get("spec") or {}).get("type", "")),
        ({"name": "Cluster-IP", "type": "string"}, lambda o: (o.get("spec") or {}).get("clusterIP", "<none>")),
        ({"name": "External-IP", "type": "string"}, lambda o: "<none>"),
        ({"name": "Port(s)", "type": "string"}, _ports),
    ],
}


def _columns(res: Resource, version: str) -> list[tuple[dict, Callable[[dict], Any]]]:
    if res.custom:
        declared = res.columns.get(version) or []
        cols = declared if declared else [_AGE]
        return [({"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
                  "description": c.get("description", ""), "priority": c.get("priority", 0)},
                 (lambda o, c=c: _cell(c, o))) for c in cols]
    extra = [({**col, "format": "", "description": "", "priority": 0}, fn) for col, fn in _BUILTIN.get(res.plural, [])]
    return extra + [(dict(_AGE), lambda o: _age((o.get("metadata") or {}).get("creationTimestamp")))]


def partial_metadata(obj: dict) -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def build_table(res: Resource, version: str, objs: list[dict], list_meta: dict, include: str = "Metadata") -> dict:
    """A meta.k8s.io/v1 Table of ``objs`` (``include``: None, Metadata or Object, as ``?includeObject=``)."""
    columns = _columns(res, version)
    definitions = [dict(_NAME)] + [{k: v for k, v in col.items() if k != "jsonPath"} for col, _ in columns]
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": [obj["metadata"].get("name")] + [fn(obj) for _, fn in columns]}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": definitions, "rows": rows}
