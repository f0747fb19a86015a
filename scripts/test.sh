#!/usr/bin/env bash
# The whole test suite: fetches the model assets (pinned, sha256-checked, cached), then runs
# every unit and integration test against the real model, real sled files and real gRPC on
# loopback. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

assets="$(bash scripts/setup.sh)"
export CACHET_ASSETS_DIR="$assets"
cargo test --locked "$@"
