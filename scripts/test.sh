#!/usr/bin/env bash
# The whole test suite: fetches the model assets (pinned, sha256-checked, cached) and the
# official OpenAI Python SDK (pinned, in a venv of its own, for the front-door test), installs
# redis-server and openssl from Debian when missing (for fleet mode: tests/fleet.rs starts its
# own redis-server on a free loopback port, plain and TLS), then runs every unit and integration
# test against the real model, real sled files and real gRPC/HTTP on loopback. Extra arguments
# go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The fleet-mode tests need a real redis-server, and openssl to make its TLS certificates.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test: installing ${missing[*]} (Debian packages) for the fleet-mode tests" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

assets="$(bash scripts/setup.sh)"
export CACHET_ASSETS_DIR="$assets"

# The SDK venv is rebuilt only when tests/sdk/requirements.txt changes.
venv="${CACHET_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/cachet/test-venv}"
wanted="$(sha256sum tests/sdk/requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
  echo "test: installing the OpenAI SDK into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  echo "$wanted" > "$venv/.requirements.sha256"
fi
export CACHET_TEST_PYTHON="$venv/bin/python"

cargo test --locked "$@"
