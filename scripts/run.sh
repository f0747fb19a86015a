#!/usr/bin/env bash
# The main job: a working sidecar with its embedded defaults (sled in ./data, the local model),
# a SIMULATED OpenAI-compatible provider standing in for a real one, and a demo client that
# shows hits, misses and tokens saved. The sidecar keeps serving on 127.0.0.1:50051 afterwards
# until Ctrl-C; set CACHET_DEMO_EXIT=1 to stop right after the demo.
#
# To use a real provider instead of the simulator, set CACHET_UPSTREAM__BASE_URL (and its key,
# OPENAI_API_KEY by default); the simulator is then not started.
set -euo pipefail
cd "$(dirname "$0")/.."

assets="$(bash scripts/setup.sh)"
export CACHET_ASSETS_DIR="$assets"
cargo build --release --quiet
bin=target/release/cachet

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# The sidecar's and the simulator's logs go to a file, so the demo's report stays readable.
log=cachet.log
echo "logs: $log"
if [ -z "${CACHET_UPSTREAM__BASE_URL:-}" ]; then
  "$bin" simulate-upstream --listen 127.0.0.1:8089 2>>"$log" &
  pids+=($!)
  # Price the simulated model like the real gpt-4o-mini, so the report shows money as well.
  export CACHET_UPSTREAM__INPUT_USD_PER_MTOK="${CACHET_UPSTREAM__INPUT_USD_PER_MTOK:-0.15}"
  export CACHET_UPSTREAM__OUTPUT_USD_PER_MTOK="${CACHET_UPSTREAM__OUTPUT_USD_PER_MTOK:-0.60}"
fi
# The admin token for this run (showback below); set your own to keep it.
export CACHET_ADMIN_TOKEN="${CACHET_ADMIN_TOKEN:-demo-$(date +%s)-$RANDOM}"
"$bin" serve ${CACHET_CONFIG:+--config "$CACHET_CONFIG"} 2>>"$log" &
pids+=($!)

"$bin" demo --endpoint http://127.0.0.1:50051
"$bin" report --endpoint http://127.0.0.1:50052 --days 1

if [ "${CACHET_DEMO_EXIT:-0}" = "1" ]; then
  exit 0
fi
cat <<EOF
cachet is serving. Ctrl-C stops it.
  gRPC cache API   127.0.0.1:50051   (reflection on: grpcurl -plaintext 127.0.0.1:50051 list)
  OpenAI-style     http://127.0.0.1:50080/v1   (any OpenAI SDK: set base_url to this)
  gRPC admin API   127.0.0.1:50052   (bearer token: \$CACHET_ADMIN_TOKEN)
  metrics          http://127.0.0.1:9464/metrics
EOF
wait "${pids[-1]}"
