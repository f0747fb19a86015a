#!/usr/bin/env python3
"""Measure a learned match score against plain cosine: a logistic regression on the two last
messages' embeddings. Measured and NOT adopted (README, "Hit quality"); the experiment's
integration into the matching path is kept apart from the product.

The scorer reads what the sidecar already has when it judges a candidate: the query's
embedding u and the stored entry's embedding v (all-MiniLM-L6-v2, unit length, 384 floats),
and gives the probability that the two need the same answer from the features

    [u * v (384), |u - v| (384), cosine(u, v)]

Inputs are written by the product itself (`cachet embed-pairs`), so training and serving
embed with the same code:

    cachet embed-pairs --pairs qqptrain.jsonl --out /tmp/v_train   # -> v_train.f32, .jsonl
    cachet embed-pairs --pairs qqpdev.jsonl --out /tmp/v_dev
    python eval/train_scorer.py --train /tmp/v_train --valid /tmp/v_dev [--measure /tmp/v_qqp1500]

Data: Quora Question Pairs (../shared/data/qqp-pairs.jsonl.gz); see eval/README.md for the
samples and how they are drawn (never the README's report sample, never eval/pairs.jsonl's
held-out split). The regularisation strength is chosen by ROC AUC on the validation sample,
and the default threshold there too: the score threshold with the most hits while no more
than --budget of the validation traps are served (guards included, as in the sidecar: a pair
is served when no guard family refuses its two last messages and its score reaches the
threshold). --measure reports both scores on further samples (only single questions: the
earlier turns of chats are not modelled here; `cachet tune` measures those).

Deterministic: the same inputs give the same figures (lbfgs, no random state).
Needs numpy and scikit-learn (eval/requirements-scorer.txt).
"""

import argparse
import json
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

DIMENSIONS = 384
CS = [0.1, 1.0, 3.0, 10.0, 30.0, 100.0]


def load(prefix):
    """Vectors [n, 2, 384], labels, guard verdicts, categories and splits of one embed-pairs run."""
    vectors = np.fromfile(prefix + ".f32", dtype="<f4").reshape(-1, 2, DIMENSIONS)
    info = [json.loads(line) for line in open(prefix + ".jsonl", encoding="utf-8")]
    if len(info) != len(vectors):
        sys.exit(f"{prefix}: {len(vectors)} vector pairs but {len(info)} info lines")
    embedded = np.abs(vectors).sum(axis=2).min(axis=1) > 0  # a side too long to embed is zeros
    return {
        "u": vectors[:, 0, :].astype(np.float64),
        "v": vectors[:, 1, :].astype(np.float64),
        "y": np.array([i["same_answer"] for i in info]),
        "guarded": np.array([i["guard"] is not None for i in info]),
        "category": [i["category"] for i in info],
        "split": [i.get("split") for i in info],
        "embedded": embedded,
    }


def select(data, keep):
    keep = np.asarray(keep)
    return {
        k: (v[keep] if isinstance(v, np.ndarray) else [x for x, m in zip(v, keep) if m])
        for k, v in data.items()
    }


def features(u, v):
    return np.hstack([u * v, np.abs(u - v), (u * v).sum(axis=1, keepdims=True)])


def cosine(data):
    return (data["u"] * data["v"]).sum(axis=1)


def served_rates(score, data, threshold):
    """Hit rate and wrong-answer rate as the sidecar would serve: no guard, score >= t."""
    served = (~data["guarded"]) & data["embedded"] & (score >= threshold)
    y = data["y"]
    return served[y].mean(), served[~y].mean()


def best_within(score, data, budget):
    """The threshold with the most hits while at most `budget` of the traps are served."""
    best = None
    for t in np.unique(np.round(score, 3)):
        hits, wrong = served_rates(score, data, t)
        if wrong <= budget and (best is None or hits > best[1]):
            best = (float(t), hits, wrong)
    return best


def describe(name, data, scorers, budget):
    passing = ~data["guarded"] & data["embedded"]
    for label, score in scorers:
        auc_all = roc_auc_score(data["y"], score)
        auc_pass = roc_auc_score(data["y"][passing], score[passing])
        t, hits, wrong = best_within(score, data, budget)
        print(
            f"{name:>10} {label:>7}: AUC {auc_all:.3f} (guard-passing {auc_pass:.3f}); "
            f"best within {budget:.0%} wrong: t={t:.3f} {hits:.1%} hits, {wrong:.1%} wrong"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", required=True, nargs="+", help="embed-pairs output prefixes")
    parser.add_argument("--valid", required=True, help="embed-pairs output prefix")
    parser.add_argument("--measure", nargs="*", default=[], help="more prefixes to report on")
    parser.add_argument("--budget", type=float, default=0.05)
    args = parser.parse_args()

    parts = [load(p) for p in args.train]
    train = {
        k: (np.concatenate([p[k] for p in parts]) if isinstance(parts[0][k], np.ndarray)
            else sum((p[k] for p in parts), []))
        for k in parts[0]
    }
    train = select(train, train["embedded"])
    valid = load(args.valid)
    x_train = features(train["u"], train["v"])
    x_valid = features(valid["u"], valid["v"])
    print(f"train {len(train['y'])} pairs ({train['y'].mean():.1%} same answer), "
          f"valid {len(valid['y'])}")

    best = None
    for c in CS:
        model = LogisticRegression(C=c, max_iter=5000).fit(x_train, train["y"])
        auc = roc_auc_score(valid["y"], model.decision_function(x_valid))
        print(f"C={c}: validation AUC {auc:.4f}")
        if best is None or auc > best[1]:
            best = (c, auc, model)
    c, _, model = best

    def score(data):
        return model.predict_proba(features(data["u"], data["v"]))[:, 1]

    threshold, hits, wrong = best_within(score(valid), valid, args.budget)
    print(f"chosen C={c}; default threshold {threshold:.3f} "
          f"({hits:.1%} hits, {wrong:.1%} wrong on validation)")
    for name, data in [("valid", valid)] + [(p, load(p)) for p in args.measure]:
        describe(name.rsplit("/", 1)[-1], data, [("cosine", cosine(data)), ("scorer", score(data))],
                 args.budget)


if __name__ == "__main__":
    main()
