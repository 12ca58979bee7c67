"""Chart documentation: a comment on every value, the schema knows every value, the README lists them all."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tokenfleet import config

CHART = Path(__file__).resolve().parents[2] / "charts" / "tokenfleet"
KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+):(.*)$")


def documented_values(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """([(dotted path, comment)] of every commented key, [paths of leaves with no comment]).

    A comment right above a key documents it and everything under it; an uncommented key is fine
    only as a parent whose children are all documented.
    """
    documented, undocumented = [], []
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    covered: int | None = None  # indentation of the documented key we are inside
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip().removeprefix("-- "))
            continue
        match = KEY.match(line)
        if not stripped or not match:
            comment = []
            continue
        indent = len(match.group(1))
        if covered is not None and indent > covered:
            continue
        covered = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        path = ".".join(key for _, key in stack)
        if comment:
            documented.append((path, " ".join(comment)))
            covered = indent
        elif match.group(3).strip():
            undocumented.append(path)
        comment = []
    return documented, undocumented


VALUES_TEXT = (CHART / "values.yaml").read_text()
DOCUMENTED, UNDOCUMENTED = documented_values(VALUES_TEXT)


def test_the_parser_flags_an_uncommented_value():
    documented, undocumented = documented_values("a:\n  # -- fine\n  b: 1\n  c: 2\n# -- whole map\nd:\n  e: 3\n")
    assert [p for p, _ in documented] == ["a.b", "d"]
    assert undocumented == ["a.c"]


def test_every_value_has_a_comment():
    assert UNDOCUMENTED == []
    assert len(DOCUMENTED) > 40


def test_the_schema_knows_every_documented_value_and_nothing_else():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load(VALUES_TEXT)
    for path, _ in DOCUMENTED:
        node = schema
        for key in path.split("."):
            assert key in node.get("properties", {}), f"values.schema.json lacks {path}"
            node = node["properties"][key]
        assert node.get("description"), f"{path} has no description in the schema"

    def schema_paths(node, prefix=""):
        for key, child in node.get("properties", {}).items():
            path = f"{prefix}{key}"
            if child.get("type") == "object" and "properties" in child and child.get("additionalProperties") is False:
                yield from schema_paths(child, path + ".")
            else:
                yield path

    documented = {p for p, _ in DOCUMENTED}
    for path in schema_paths(schema):
        if path == "global":
            continue
        assert path in documented or any(path.startswith(d + ".") for d in documented), f"{path} not in values.yaml"
    assert values["image"]["tag"] == "", "the tag defaults to appVersion, pinned per chart release"


def test_the_readme_documents_every_value_and_the_sections_a_reader_needs():
    readme = (CHART / "README.md").read_text()
    for section in ("## Install", "## Uninstall", "## Upgrading", "## Configuration"):
        assert section in readme
    rows = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, re.M))
    documented = {p for p, _ in DOCUMENTED}
    assert documented - rows == set(), "values missing from the README's Configuration table"
    env_vars = set(re.findall(r"`(TOKENFLEET_[A-Z_]+)`", readme))
    assert env_vars == {var for var, _ in config.ENV.values()}
