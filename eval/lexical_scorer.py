#!/usr/bin/env python3
"""Does a lexical signal beside cosine similarity separate should-hit pairs from traps?

Issue #4 asked whether a small scorer combining the embedding cosine with lexical features
(content-word overlap after stemming, length ratio, words only one side has) could serve more
genuine repeats at the same wrong-answer rate. This script answers it from `cachet tune --json`
reports: it keeps the pairs no guard refused (the only ones a scorer could still change),
computes the features from the pair texts, fits a logistic regression on the fitting reports
and prints the ranking quality (ROC AUC) of cosine alone and of each combination on the
evaluation reports.

`cachet tune` keeps the order of the pairs file in its `outcomes`, so report and pairs file are
read side by side (the script checks category and label agree on every line).

    cachet tune --pairs eval/pairs.jsonl --split tune --json tune.json
    cachet tune --pairs qqp-fit.jsonl --json qqp-fit.json
    cachet tune --pairs qqp-check.jsonl --json qqp-check.json
    python3 eval/lexical_scorer.py --fit eval/pairs.jsonl:tune:tune.json qqp-fit.jsonl::qqp-fit.json \\
        --check eval/pairs.jsonl:tune:tune.json qqp-check.jsonl::qqp-check.json

Measured 2026-11 (see README, "Hit quality"): the lexical features add nothing on Quora pairs
(AUC 0.831 cosine alone, 0.836 at best with them) and the fitted weight on word overlap comes
out negative, because on this project's traps the two texts share almost every word. cachet
therefore has no such scorer. Standard library only.
"""

import argparse
import gzip
import json
import math
import re

STOP = set(
    """a an the is are was were be been being am do does did doing have has had having i me my
    mine we us our ours you your yours he him his she her hers it its they them their theirs what
    which who whom whose when where why how this that these those there here of in on at to for
    from by with about as into onto than then so if or and but not no can could would should will
    shall may might must please thanks thank hi hello hey just any some much many very really also
    get got tell know want need like way ways best good""".split()
)
FEATURES = ["cosine", "jaccard", "coverage", "length_ratio", "one_sided_words"]


def stem(word):
    """The same light suffix stripping as src/cache/guard/text.rs."""
    for suffix, min_len, replacement in [
        ("ies", 5, "y"),
        ("ing", 6, ""),
        ("ed", 5, ""),
        ("es", 5, ""),
        ("s", 4, ""),
    ]:
        if len(word) >= min_len and word.endswith(suffix) and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + replacement
    return word


def last_text(side):
    return side[-1]["content"] if isinstance(side, list) else side


def words(text):
    text = text.lower().replace("'", "").replace("\u2019", "")
    return [stem(w) for w in re.findall(r"[a-z0-9]+", text)]


def features(outcome, pair):
    a, b = last_text(pair["a"]), last_text(pair["b"])
    ca = {w for w in words(a) if w not in STOP}
    cb = {w for w in words(b) if w not in STOP}
    shared = len(ca & cb)
    na, nb = len(words(a)), len(words(b))
    return [
        outcome["similarity"],
        shared / (len(ca | cb) or 1),
        shared / (min(len(ca), len(cb)) or 1),
        min(na, nb) / max(na, nb, 1),
        len(ca ^ cb),
    ]


def read_lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load(spec):
    """`pairs.jsonl:split:report.json` (split may be empty) -> (features, labels)."""
    pairs_path, split, report_path = spec.split(":")
    pairs = [p for p in read_lines(pairs_path) if not split or p.get("split") == split]
    with open(report_path, encoding="utf-8") as f:
        outcomes = json.load(f)["outcomes"]
    if len(pairs) != len(outcomes):
        raise SystemExit(f"{spec}: {len(pairs)} pairs but {len(outcomes)} outcomes")
    xs, ys = [], []
    for pair, outcome in zip(pairs, outcomes):
        if (pair["category"], pair["same_answer"]) != (outcome["category"], outcome["same_answer"]):
            raise SystemExit(f"{spec}: report and pairs file are not in the same order")
        if outcome["exact"] or outcome["guard"] is not None:
            continue
        xs.append(features(outcome, pair))
        ys.append(1.0 if pair["same_answer"] else 0.0)
    return xs, ys


def auc(scores, labels):
    ranked = sorted(zip(scores, labels))
    positives = sum(labels)
    negatives = len(labels) - positives
    rank_sum = sum(i + 1 for i, (_, y) in enumerate(ranked) if y)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def fit(xs, ys, columns, steps=3000, rate=0.5):
    """Logistic regression by batch gradient descent on standardised features."""
    cols = [[x[c] for x in xs] for c in columns]
    means = [sum(c) / len(c) for c in cols]
    scales = [math.sqrt(sum((v - m) ** 2 for v in c) / len(c)) or 1.0 for c, m in zip(cols, means)]
    z = [[(x[c] - m) / s for c, m, s in zip(columns, means, scales)] for x in xs]
    w, bias = [0.0] * len(columns), 0.0
    for _ in range(steps):
        grad, grad_bias = [0.0] * len(columns), 0.0
        for row, y in zip(z, ys):
            p = 1 / (1 + math.exp(-(bias + sum(wi * v for wi, v in zip(w, row)))))
            grad_bias += p - y
            grad = [g + (p - y) * v for g, v in zip(grad, row)]
        w = [wi - rate * g / len(z) for wi, g in zip(w, grad)]
        bias -= rate * grad_bias / len(z)
    # Back to raw feature units.
    raw = [wi / s for wi, s in zip(w, scales)]
    return raw, bias - sum(r * m for r, m in zip(raw, means))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fit", nargs="+", required=True, metavar="PAIRS:SPLIT:REPORT")
    parser.add_argument("--check", nargs="+", required=True, metavar="PAIRS:SPLIT:REPORT")
    args = parser.parse_args()
    xs, ys = [], []
    for spec in args.fit:
        x, y = load(spec)
        xs += x
        ys += y
    checks = [(spec, *load(spec)) for spec in args.check]
    print(f"fitted on {len(ys)} guard-passing pairs")
    for columns in [[0], [0, 1], [0, 2], [0, 1, 3], [0, 1, 2, 3, 4]]:
        weights, bias = fit(xs, ys, columns)
        names = " + ".join(f"{w:.2f}*{FEATURES[c]}" for w, c in zip(weights, columns))
        print(f"{names} {bias:+.2f}")
        for spec, x, y in checks:
            scores = [sum(w * row[c] for w, c in zip(weights, columns)) for row in x]
            print(f"    AUC {auc(scores, y):.3f} on {len(y)} pairs of {spec}")


if __name__ == "__main__":
    main()
