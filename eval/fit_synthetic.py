#!/usr/bin/env python3
"""Fit the shape of cachet's calibrated synthetic vectors (src/synthetic.rs) to real ones.

`cachet bench scale` measures the index at a million entries on generated vectors. Their
`calibrated` shape is fitted here to the product's own embeddings of real questions, written
by `cachet embed-pairs` (see eval/README.md, "Learned match score", for the 16,000-pair
training sample of Quora questions; any PREFIX.f32 of [pairs][2][384] little-endian floats
works). Only the first question of each pair is used, so a pair's duplicate does not stand in
for a nearest neighbour.

It prints:
- the variance spectrum of the real vectors (eigenvalues of their covariance) and the fit of
  `(k + K0)^-POWER * exp(-max(k - CUT, 0) / FALL)`, the constants SPECTRUM_* in synthetic.rs;
- the participation ratio (how many directions the variance really spreads over) and the
  norm of the mean (COMMON_OFFSET);
- nearest-neighbour and unrelated-pair cosines of the real vectors against the model with
  synthetic.rs's topic constants (4 points a topic, log-normal spread median 0.9, sigma 0.6),
  at the same number of points.

    ~/.cache/cachet/scorer-venv/bin/python eval/fit_synthetic.py /tmp/v_qqptrain.f32

Needs numpy and scipy (eval/requirements-scorer.txt). Deterministic (seeded).
"""

import sys

import numpy as np
from scipy.optimize import least_squares

DIMENSIONS = 384
POINTS_PER_TOPIC = 4
SPREAD_MEDIAN, SPREAD_SIGMA = 0.9, 0.6


def spectrum(params, k):
    k0, power, cut, fall = params
    return (k + k0) ** -power * np.exp(-np.maximum(k - cut, 0) / fall)


def nearest_and_unrelated(x):
    sims = x @ x.T
    np.fill_diagonal(sims, -1)
    nearest = np.percentile(sims.max(1), [5, 25, 50, 75, 90])
    some = sims[:2000, :2000][np.triu_indices(min(2000, len(x)), 1)]
    return np.round(nearest, 3), np.round(np.percentile(some, [5, 50, 95]), 3)


def main(path):
    pairs = np.fromfile(path, dtype="<f4").reshape(-1, 2, DIMENSIONS)
    real = pairs[:, 0, :]
    real = real[np.linalg.norm(real, axis=1) > 0.5][:16000]
    mean = real.mean(0)
    eig = np.sort(np.linalg.eigvalsh(np.cov((real - mean).T)))[::-1]
    k = np.arange(1, DIMENSIONS + 1, dtype=float)
    fitted = k <= 330  # the last directions carry almost nothing and only add noise to a log fit

    def residual(params):
        model = spectrum(params, k[fitted])
        return np.log(model / model.sum() * eig[fitted].sum()) - np.log(eig[fitted])

    fit = least_squares(residual, [10, 1.0, 300, 20], bounds=([0, 0.1, 200, 1], [200, 4, 384, 200]))
    k0, power, cut, fall = fit.x
    model = spectrum(fit.x, k)
    model /= model.sum()
    print(f"{len(real)} real vectors from {path}")
    print(f"spectrum fit: K0 {k0:.1f}  POWER {power:.3f}  CUT {cut:.1f}  FALL {fall:.1f}")
    print(f"participation ratio: real {eig.sum() ** 2 / (eig ** 2).sum():.1f}, model {1 / (model ** 2).sum():.1f}")
    print(f"mean norm (COMMON_OFFSET): {np.linalg.norm(mean):.3f}")

    rng = np.random.default_rng(1)
    n = len(real)
    scales = np.sqrt(model)
    centres = rng.standard_normal((n // POINTS_PER_TOPIC, DIMENSIONS)) * scales
    topic = rng.integers(0, len(centres), n)
    spread = np.exp(rng.normal(np.log(SPREAD_MEDIAN), SPREAD_SIGMA, n))[:, None]
    x = centres[topic] + rng.standard_normal((n, DIMENSIONS)) * scales * spread
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[:, -1] += np.linalg.norm(mean)
    x /= np.linalg.norm(x, axis=1, keepdims=True)

    for name, vectors in (("real", real), ("model", x.astype(np.float32))):
        nearest, unrelated = nearest_and_unrelated(vectors)
        print(f"{name:>5}: nearest-neighbour cosine p5/25/50/75/90 {nearest}; unrelated pairs p5/50/95 {unrelated}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
