"""GPTCache on the same workload as `cachet bench`: the peer run of issue #5.

Replays a plan written by `cachet bench --plan-out` (the texts stored to warm the cache, then
the lookups, run by run) against GPTCache 0.1.44 IN-PROCESS: no server, no network, no
serialisation, which is the most favourable setting GPTCache has. cachet is measured by
`cachet bench` over gRPC on loopback, client on the same cores (see run.sh).

GPTCache is configured like cachet as far as it goes:
- the same model files (all-MiniLM-L6-v2 int8 ONNX and tokenizer.json from cachet's assets
  folder), through a custom embedding function: onnxruntime with 2 intra-op threads (cachet's
  `embed.threads`), tokens truncated at 256, mean pooling over the attention mask, unit length;
- an HNSW index (hnswlib, GPTCache's `hnswlib` vector store: M=16, ef_construction=100) and
  SQLite for the entries (GPTCache's `sqlite` cache store);
- the same similarity threshold: GPTCache scores a candidate `4 - d` where d is the squared L2
  distance (`SearchDistanceEvaluation`), and for unit vectors d = 2 - 2 cos, so cosine 0.88
  (cachet's default threshold) is similarity_threshold = (4 - 0.24) / 4 = 0.94.

Each run uses a fresh cache. Latency is timed around `gptcache.adapter.api.get`; concurrency is
that many Python threads (onnxruntime releases the GIL while it runs the model).
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from gptcache import Cache, Config
from gptcache.adapter.api import get, put
from gptcache.manager import CacheBase, VectorBase, get_data_manager
from gptcache.processor.pre import get_prompt
from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation

DIMENSIONS = 384
MAX_TOKENS = 256


class MiniLM:
    """cachet's model, run the way cachet runs it (fastembed: mean pooling, normalised)."""

    def __init__(self, model_dir, threads):
        self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.path.join(model_dir, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, text, **_):
        encoding = self.tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]  # (1, tokens, 384)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        vector = pooled[0]
        return (vector / np.linalg.norm(vector)).astype(np.float32)


def threshold_for(cosine):
    """GPTCache's similarity_threshold that accepts exactly cosine >= `cosine`."""
    return (4.0 - (2.0 - 2.0 * cosine)) / 4.0


def fresh_cache(folder, embed, cosine, entries):
    cache = Cache()
    data_manager = get_data_manager(
        # Writers wait for SQLite's lock instead of failing at once ("database is locked").
        CacheBase("sqlite", sql_url=f"sqlite:///{folder}/gptcache.db?timeout=30"),
        VectorBase(
            "hnswlib",
            dimension=DIMENSIONS,
            index_path=f"{folder}/hnswlib.index",
            max_elements=max(entries * 2, 1000),
            top_k=1,
        ),
    )
    # GPTCache 0.1.44's hnswlib store hands hnswlib's numpy.uint64 labels to SQLAlchemy, whose
    # lookup by such an id finds nothing (every get() is a miss); plain ints fix that.
    search = data_manager.v.search

    def search_with_int_ids(data, top_k=-1):
        return [(float(d), int(i)) for d, i in search(data, top_k)]

    data_manager.v.search = search_with_int_ids
    cache.init(
        pre_embedding_func=get_prompt,
        embedding_func=embed,
        data_manager=data_manager,
        similarity_evaluation=SearchDistanceEvaluation(),
        # No report row written per hit (cachet keeps its counters in memory, too).
        config=Config(similarity_threshold=threshold_for(cosine), disable_report=True),
    )
    return cache


def percentile(sorted_ms, p):
    """Nearest rank, like `cachet bench`."""
    if not sorted_ms:
        return 0.0
    rank = max(1, min(len(sorted_ms), int(-(-p * len(sorted_ms) // 1))))
    return sorted_ms[rank - 1]


def latency(samples):
    ms = sorted(samples)
    return {
        "count": len(ms),
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "mean_ms": sum(ms) / len(ms) if ms else 0.0,
    }


def run_level(run, embed, cosine, answer):
    with tempfile.TemporaryDirectory(prefix="gptcache-peer-") as folder:
        cache = fresh_cache(folder, embed, cosine, len(run["store"]))
        started = time.perf_counter()
        for text in run["store"]:
            put(text, answer, cache_obj=cache)
        warm_secs = time.perf_counter() - started

        lookups = run["lookups"]
        results = [None] * len(lookups)
        next_index = iter(range(len(lookups)))
        lock = threading.Lock()
        errors = []

        def worker():
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                sent = time.perf_counter()
                try:
                    found = get(lookups[i]["text"], cache_obj=cache)
                    outcome = found is not None
                except Exception as err:  # counted and reported, like cachet bench's errors
                    errors.append(repr(err))
                    outcome = None
                results[i] = ((time.perf_counter() - sent) * 1000.0, outcome)

        threads = [threading.Thread(target=worker) for _ in range(run["concurrency"])]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started

    by_kind = {}
    for lookup, (ms, hit) in zip(lookups, results):
        if hit is None:
            continue  # an error: not a latency sample
        entry = by_kind.setdefault(lookup["kind"], {"samples": [], "hits": 0})
        entry["samples"].append(ms)
        entry["hits"] += hit
    return {
        "concurrency": run["concurrency"],
        "requests": len(lookups),
        "warmed_entries": len(run["store"]),
        "warm_secs": warm_secs,
        "wall_secs": wall,
        "throughput_rps": (len(lookups) - len(errors)) / wall,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "all": latency([ms for ms, hit in results if hit is not None]),
        "by_kind": {
            kind: dict(latency(v["samples"]), hit_rate=v["hits"] / len(v["samples"]))
            for kind, v in by_kind.items()
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", required=True, help="JSON from `cachet bench --plan-out`")
    parser.add_argument("--assets", required=True, help="cachet's assets folder (scripts/setup.sh)")
    parser.add_argument("--threshold", type=float, default=0.88, help="cosine, as cachet's")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--json", required=True, help="where to write the results")
    args = parser.parse_args()

    with open(args.plan) as f:
        plan = json.load(f)
    embed = MiniLM(os.path.join(args.assets, "model"), args.threads)
    embed("warm up the session")
    runs = []
    for run in plan["runs"]:
        result = run_level(run, embed, args.threshold, plan["answer"])
        kinds = result["by_kind"]
        print(
            f"GPTCache c={result['concurrency']:>2}: {result['throughput_rps']:7.1f} req/s, "
            f"{result['errors']} errors; "
            + "; ".join(
                f"{k} p50 {v['p50_ms']:.2f} ms p99 {v['p99_ms']:.2f} ms hits {v['hit_rate']:.0%}"
                for k, v in kinds.items()
            ),
            flush=True,
        )
        runs.append(result)
    report = {
        "tool": "gptcache 0.1.44, in-process",
        "embedding": "all-MiniLM-L6-v2 int8 ONNX (cachet's files), onnxruntime "
        + ort.__version__
        + f", {args.threads} intra-op threads",
        "index": "hnswlib (GPTCache's hnswlib store, top_k=1) + SQLite",
        "threshold_cosine": args.threshold,
        "workload": plan["workload"],
        "runs": runs,
    }
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
