#!/usr/bin/env bash
# The whole test suite: fetches the model assets (pinned, sha256-checked, cached), then runs
# every unit and integration test against the real model, real sled files, real gRPC on
# loopback and, for fleet mode, a real redis-server (Debian's package, installed here when
# missing; tests/fleet.rs starts its own on a free loopback port, plain and TLS). Extra arguments go to `cargo test`.
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
cargo test --locked "$@"
