"""The subset of kubectl's JSONPath that printer columns use: fields, indexes, wildcards, slices, filters."""

from __future__ import annotations

import json
import operator
import re
from typing import Any

_MISSING = object()
_FILTER = re.compile(r"^\?\(\s*@((?:\.[A-Za-z0-9_\-/]+|\[[^\]]*\])*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _bracket(body: str) -> tuple:
    body = body.strip()
    if body.startswith("?"):
        m = _FILTER.match(body)
        if not m:
            raise ValueError(f"unsupported filter: [{body}]")
        return ("filter", parse(m[1]) if m[1] else [], m[2], _literal(m[3]) if m[3] is not None else None)
    if body == "*":
        return ("wild",)
    if body[:1] in "'\"":
        return ("field", body[1:-1])
    if ":" in body:
        start, _, end = body.partition(":")
        return ("slice", int(start) if start.strip() else None, int(end.split(":")[0]) if end.strip() else None)
    return ("index", int(body))


def parse(expr: str) -> list[tuple]:
    """Steps of a path such as ``.status.conditions[?(@.type=="Ready")].status`` (braces and ``$`` optional)."""
    text = expr.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[tuple] = []
    i = 0
    while i < len(text):
        if text.startswith("..", i):
            m = re.match(r"[A-Za-z0-9_\-/]+|\*", text[i + 2:])
            if not m:
                raise ValueError(f"bad recursive descent in {expr!r}")
            steps.append(("recurse", m[0]))
            i += 2 + len(m[0])
        elif text[i] == ".":
            m = re.match(r"[A-Za-z0-9_\-/]+|\*", text[i + 1:])
            if not m:
                raise ValueError(f"bad field in {expr!r}")
            steps.append(("wild",) if m[0] == "*" else ("field", m[0]))
            i += 1 + len(m[0])
        elif text[i] == "[":
            depth, j = 0, i
            while j < len(text):
                depth += {"[": 1, "]": -1}.get(text[j], 0)
                if depth == 0:
                    break
                j += 1
            steps.append(_bracket(text[i + 1:j]))
            i = j + 1
        else:
            raise ValueError(f"unexpected {text[i]!r} in {expr!r}")
    return steps


def _children(node: Any) -> list:
    if isinstance(node, dict):
        return list(node.values())
    if isinstance(node, list):
        return list(node)
    return []


def _descend(node: Any, name: str) -> list:
    found = []
    if isinstance(node, dict):
        if name == "*":
            found.extend(node.values())
        elif name in node:
            found.append(node[name])
    for child in _children(node):
        found.extend(_descend(child, name))
    return found


_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge}


def _compare(left: Any, op: str, right: Any) -> bool:
    try:
        return bool(_OPS[op](left, right))
    except TypeError:
        return False


def _step(nodes: list, step: tuple) -> list:
    out: list = []
    kind = step[0]
    for node in nodes:
        if kind == "field" and isinstance(node, dict) and step[1] in node:
            out.append(node[step[1]])
        elif kind == "index" and isinstance(node, list) and -len(node) <= step[1] < len(node):
            out.append(node[step[1]])
        elif kind == "slice" and isinstance(node, list):
            out.extend(node[step[1]:step[2]])
        elif kind == "wild":
            out.extend(_children(node))
        elif kind == "recurse":
            out.extend(_descend(node, step[1]))
        elif kind == "filter" and isinstance(node, list):
            for item in node:
                values = find_steps(item, step[1])
                if step[2] is None:
                    if values:
                        out.append(item)
                elif any(_compare(v, step[2], step[3]) for v in values):
                    out.append(item)
    return out


def find_steps(obj: Any, steps: list[tuple]) -> list:
    nodes = [obj]
    for step in steps:
        nodes = _step(nodes, step)
    return nodes


def find(obj: Any, expr: str) -> list:
    """All values ``expr`` selects in ``obj`` (empty when nothing matches)."""
    return find_steps(obj, parse(expr))
