"""Puts `cachet bench --json` and peer.py's JSON side by side, with the ratios (stdlib only)."""

import json
import sys

# cachet reports latency by the status the sidecar returned; on this workload every exact
# repeat is HIT_EXACT, every paraphrase that hits is HIT_SEMANTIC and every new question a
# MISS, so they line up with GPTCache's figures by intended kind.
PATHS = [("exact repeat", "exact", "exact"), ("paraphrase", "semantic", "paraphrase"),
         ("new question", "miss", "new")]


def main(cachet_path, gptcache_path):
    with open(cachet_path) as f:
        cachet = json.load(f)
    with open(gptcache_path) as f:
        peer = json.load(f)
    print(f"\ncachet: over gRPC on loopback (client on the same cores); GPTCache: {peer['tool']}")
    print(f"embedding (both): {peer['embedding']}; GPTCache index: {peer['index']}")
    print("| c | path | cachet p50 / p99 ms | GPTCache p50 / p99 ms | p50 ratio (cachet / GPTCache) |")
    print("|---|---|---|---|---|")
    for ours, theirs in zip(cachet["runs"], peer["runs"]):
        c = ours["concurrency"]
        for label, status, kind in PATHS:
            a, b = ours[status], theirs["by_kind"].get(kind)
            if not b or not a["count"]:
                continue
            print(f"| {c} | {label} | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} | "
                  f"{b['p50_ms']:.2f} / {b['p99_ms']:.2f} | {a['p50_ms'] / b['p50_ms']:.3f} |")
        a, b = ours["all"], theirs["all"]
        print(f"| {c} | all | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} | "
              f"{b['p50_ms']:.2f} / {b['p99_ms']:.2f} | {a['p50_ms'] / b['p50_ms']:.3f} |")
    print("\n| c | cachet req/s | GPTCache req/s | throughput ratio | GPTCache hit rates, errors |")
    print("|---|---|---|---|---|")
    for ours, theirs in zip(cachet["runs"], peer["runs"]):
        rates = ", ".join(f"{k} {v['hit_rate']:.0%}" for k, v in theirs["by_kind"].items())
        print(f"| {ours['concurrency']} | {ours['throughput_rps']:.0f} | "
              f"{theirs['throughput_rps']:.0f} | "
              f"{ours['throughput_rps'] / theirs['throughput_rps']:.1f}x | {rates}; "
              f"{theirs['errors']} errors |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
