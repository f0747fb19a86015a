#!/usr/bin/env bash
# Peer run (issue #5): cachet and GPTCache on the same workload, same machine, one run.
#
#   bash benches/gptcache/run.sh                 # built-in questions and paraphrases
#   PAIRS=../shared/data/qqp-pairs.jsonl.gz bash benches/gptcache/run.sh   # Quora questions
#
# 1. `cachet bench --plan-out` writes what the load generator sends (warm-up stores, then the
#    lookups, per concurrency level); 2. a fresh `cachet serve` on a fresh data folder is
#    measured by `cachet bench` over gRPC; 3. peer.py replays the same plan against GPTCache
#    in-process with the same model files; 4. compare.py prints both and the ratios.
# Python packages (pinned in requirements.txt) go into a venv under ~/.cache/cachet.
# Not part of CI. Results land in $OUT (default: target/peer).
set -euo pipefail
cd "$(dirname "$0")/../.."

assets="$(bash scripts/setup.sh)"
export CACHET_ASSETS_DIR="$assets"
out="${OUT:-target/peer}"
mkdir -p "$out"
venv="${VENV:-$HOME/.cache/cachet/gptcache-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q -r benches/gptcache/requirements.txt

cargo build --release --locked
bin="${CARGO_TARGET_DIR:-target}/release/cachet"
args=(--requests "${REQUESTS:-500}" --concurrency "${CONCURRENCY:-1,8,64}")
if [ -n "${PAIRS:-}" ]; then args+=(--pairs "$PAIRS"); fi
"$bin" bench "${args[@]}" --plan-out "$out/plan.json"

data="$(mktemp -d)"
CACHET_STORAGE__DATA_DIR="$data" CACHET_SERVER__LISTEN=127.0.0.1:0 \
  CACHET_SERVER__METRICS_LISTEN= "$bin" serve >"$out/serve.out" 2>"$out/serve.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 200); do
  grep -q "listening on" "$out/serve.out" 2>/dev/null && break
  sleep 0.1
done
addr="$(sed -n 's/^cachet: listening on //p' "$out/serve.out")"
[ -n "$addr" ] || { echo "the sidecar did not start; see $out/serve.log" >&2; exit 1; }

echo "== cachet (over gRPC, fresh sidecar at $addr)"
"$bin" bench "${args[@]}" --endpoint "http://$addr" --sidecar-pid "$pid" --json "$out/cachet.json"
echo "== GPTCache (in-process, same plan)"
"$venv/bin/python" benches/gptcache/peer.py --plan "$out/plan.json" --assets "$assets" \
  --json "$out/gptcache.json"
python3 benches/gptcache/compare.py "$out/cachet.json" "$out/gptcache.json" | tee "$out/compare.md"
