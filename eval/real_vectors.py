#!/usr/bin/env python3
"""Real sentence embeddings for the HNSW benches: every distinct Quora question, embedded by
cachet's own model, with real paraphrases as queries.

Step 1 writes two pair files for `cachet embed-pairs` into DIR:
- queries.jsonl: 2,000 pairs Quora labels duplicate (seeded sample); their `b` questions are the
  queries, and their `a` questions are stored;
- stored.jsonl: every other distinct question, two to a line (the pairing means nothing).
Step 2 is `cachet embed-pairs` on both. Then `CACHET_BENCH_REAL_VECTORS=DIR cargo bench --bench
hot_paths -- index` stores the stored questions' vectors in a graph, searches it with the
queries' vectors, checks recall@1 against brute force and times the searches, beside a graph of
as many calibrated SYNTHETIC vectors (see BENCHMARKS.md).

    python3 eval/real_vectors.py ../shared/data/qqp-pairs.jsonl.gz DIR
    cachet embed-pairs --pairs DIR/stored.jsonl --out DIR/stored
    cachet embed-pairs --pairs DIR/queries.jsonl --out DIR/queries

Standard library only.
"""
import gzip, json, random, sys

source, out = sys.argv[1], sys.argv[2]
QUERIES = 2000
questions, duplicates = {}, []
for line in gzip.open(source, "rt"):
    pair = json.loads(line)
    for text in (pair["a"], pair["b"]):
        questions.setdefault(text, len(questions))
    if pair["same_answer"] and pair["a"] != pair["b"]:
        duplicates.append((pair["a"], pair["b"]))
random.Random(5).shuffle(duplicates)
queries, held_out = [], set()
for a, b in duplicates:
    # a query's own source must stay stored, and no query may be another one's source
    if a in held_out or b in held_out or any(b == s for s, _ in queries):
        continue
    queries.append((a, b))
    held_out.add(b)
    if len(queries) == QUERIES:
        break
stored = [q for q in questions if q not in held_out]
stored = stored[: len(stored) // 2 * 2]


def write(path, pairs):
    with open(path, "w") as f:
        for a, b in pairs:
            f.write(json.dumps({"a": a, "b": b, "same_answer": False, "category": "qqp"}) + "\n")


write(f"{out}/queries.jsonl", queries)
write(f"{out}/stored.jsonl", zip(stored[0::2], stored[1::2]))
print(f"{len(stored)} stored questions, {len(queries)} queries (real paraphrases of stored ones)")
