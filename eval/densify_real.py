#!/usr/bin/env python3
"""A million points shaped by real embeddings, for the HNSW benches: the real stored questions
of eval/real_vectors.py plus SYNTHETIC points made inside their real neighbourhoods.

Each new point is a stored question moved part of the way towards two of its eight nearest
stored questions (x + a(n1 - x) + b(n2 - x), a and b uniform in [0, 0.5], then normalised), so
it lies where real questions lie, in the few directions a real neighbourhood spans, instead of
in the 384 a Gaussian fills. This densifies the neighbourhoods that exist; it does not add the
new subjects a real million prompts would bring. The queries stay the real paraphrases.

    ~/.cache/cachet/gptcache-venv/bin/python eval/densify_real.py REAL_DIR OUT_DIR 1000000
    CACHET_BENCH_REAL_VECTORS=OUT_DIR cargo bench --bench hot_paths -- index

Writes OUT_DIR/stored.f32 (the real points first, in `cachet embed-pairs`' layout) and copies
the queries. Needs numpy and hnswlib (benches/gptcache/requirements.txt). Seeded.
"""
import shutil, sys
import numpy as np, hnswlib

real_dir, out_dir, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
D = 384
stored = np.fromfile(f"{real_dir}/stored.f32", dtype="<f4").reshape(-1, D)
stored = stored[np.linalg.norm(stored, axis=1) > 0.5]
n = len(stored)
index = hnswlib.Index(space="ip", dim=D)
index.init_index(max_elements=n, ef_construction=100, M=16, random_seed=1)
index.add_items(stored)
index.set_ef(64)
neighbours, _ = index.knn_query(stored, k=9)  # the first is the point itself
neighbours = neighbours[:, 1:]
rng = np.random.default_rng(11)
extra = total - n
with open(f"{out_dir}/stored.f32", "wb") as out:
    stored.astype("<f4").tofile(out)
    for start in range(0, extra, 100_000):
        m = min(100_000, extra - start)
        base = rng.integers(0, n, m)
        picks = neighbours[base[:, None], rng.integers(0, 8, (m, 2))]
        a, b = rng.uniform(0, 0.5, (2, m, 1)).astype(np.float32)
        x = stored[base]
        p = x + a * (stored[picks[:, 0]] - x) + b * (stored[picks[:, 1]] - x)
        p /= np.linalg.norm(p, axis=1, keepdims=True)
        p.astype("<f4").tofile(out)
shutil.copy(f"{real_dir}/queries.f32", f"{out_dir}/queries.f32")
print(f"{n} real points + {extra} made in their neighbourhoods = {total}")
