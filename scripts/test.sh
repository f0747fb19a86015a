#!/usr/bin/env bash
# The whole test suite: fetches the model assets (pinned, sha256-checked, cached), then runs
# every unit and integration test against the real model, real sled files, real gRPC on
# loopback and, for fleet mode, a real redis-server (Debian's package, installed here when
# missing; tests/fleet.rs starts its own on a free loopback port). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "test: installing redis-server (Debian package) for the fleet-mode tests" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >&2
fi

assets="$(bash scripts/setup.sh)"
export CACHET_ASSETS_DIR="$assets"
cargo test --locked "$@"
