#!/usr/bin/env python3
"""Sanity checks for eval/pairs.jsonl. Exits non-zero on any failure."""
import json
import os
import sys
from collections import Counter, defaultdict

SINGLE_CATS = {
    "paraphrase": "true", "typo": "true", "casing_punctuation": "true", "filler": "true",
    "reorder": "true", "negation": "both", "antonym": "both", "entity": "both",
    "number": "both", "date_time": "both", "amount_unit": "both", "identifier": "both",
    "scope": "both", "unrelated": "false",
}
CONV_CATS = {
    "conv_paraphrase": "true", "conv_chatter": "true", "conv_subject": "false",
    "conv_detail": "false", "conv_intent": "false", "conv_followup": "false",
}
MIN_30 = {"paraphrase", "negation", "antonym", "entity", "number", "identifier", "scope"}
KEYS = {"a", "b", "same_answer", "category", "split"}

errors = []
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pairs.jsonl")
rows = []
with open(path, encoding="utf-8") as fh:
    for n, line in enumerate(fh, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"line {n}: invalid JSON ({e})")
            continue
        rows.append((n, row))


def check_chat(n, side, msgs):
    if not isinstance(msgs, list) or not 2 <= len(msgs) <= 6:
        errors.append(f"line {n}: {side} must be a list of 2-6 messages")
        return
    for m in msgs:
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            errors.append(f"line {n}: {side} message must have exactly role/content")
            return
        if m["role"] not in ("user", "assistant", "system") or not isinstance(m["content"], str) or not m["content"].strip():
            errors.append(f"line {n}: {side} bad role or empty content")
    if msgs[-1]["role"] != "user":
        errors.append(f"line {n}: {side} must end with a user message")
    for i, m in enumerate(msgs):
        if m["role"] == "system" and i != 0:
            errors.append(f"line {n}: {side} system message not first")


seen = {}
for n, row in rows:
    if set(row) != KEYS:
        errors.append(f"line {n}: keys {sorted(row)}")
        continue
    cat, a, b, same, split = row["category"], row["a"], row["b"], row["same_answer"], row["split"]
    if not isinstance(same, bool):
        errors.append(f"line {n}: same_answer not bool")
    if split not in ("tune", "heldout"):
        errors.append(f"line {n}: bad split {split!r}")
    if cat in SINGLE_CATS:
        kind = SINGLE_CATS[cat]
        if not (isinstance(a, str) and isinstance(b, str)):
            errors.append(f"line {n}: single-question pair must have string a/b")
            continue
        for side, s in (("a", a), ("b", b)):
            words = len(s.split())
            if not 3 <= words <= 40:
                errors.append(f"line {n}: {side} has {words} words")
    elif cat in CONV_CATS:
        kind = CONV_CATS[cat]
        check_chat(n, "a", a)
        check_chat(n, "b", b)
        sys_a = [m for m in a if m["role"] == "system"]
        sys_b = [m for m in b if m["role"] == "system"]
        if sys_a != sys_b:
            errors.append(f"line {n}: system messages differ between sides")
        if cat in ("conv_subject", "conv_detail", "conv_intent") and a[:-1] == b[:-1]:
            errors.append(f"line {n}: {cat} pair does not differ before the final message")
    else:
        errors.append(f"line {n}: unknown category {cat!r}")
        continue
    if a == b:
        errors.append(f"line {n}: a == b")
    if kind == "true" and same is not True:
        errors.append(f"line {n}: {cat} must be same_answer=true")
    if kind == "false" and same is not False:
        errors.append(f"line {n}: {cat} must be same_answer=false")
    ka, kb = json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True)
    key = tuple(sorted((ka, kb)))
    if key in seen:
        errors.append(f"line {n}: duplicate of line {seen[key]}")
    else:
        seen[key] = n

# counts
by_cat = defaultdict(Counter)
for _, row in rows:
    c = by_cat[row["category"]]
    c["total"] += 1
    c["true" if row["same_answer"] else "false"] += 1
    c[row["split"]] += 1
    c[f"{row['split']}_{'true' if row['same_answer'] else 'false'}"] += 1

order = list(SINGLE_CATS) + list(CONV_CATS)
hdr = f"{'category':20} {'total':>5} {'true':>5} {'false':>5} {'tune':>5} {'heldout':>7}  {'tune T/F':>9} {'heldout T/F':>11}"
print(hdr)
print("-" * len(hdr))
tot = Counter()
sub = {"single": Counter(), "conversation": Counter()}
for cat in order:
    c = by_cat[cat]
    print(f"{cat:20} {c['total']:5} {c['true']:5} {c['false']:5} {c['tune']:5} {c['heldout']:7}  "
          f"{str(c['tune_true']) + '/' + str(c['tune_false']):>9} {str(c['heldout_true']) + '/' + str(c['heldout_false']):>11}")
    tot.update(c)
    sub["single" if cat in SINGLE_CATS else "conversation"].update(c)
    minimum = 30 if cat in MIN_30 else 20
    if c["total"] < minimum:
        errors.append(f"{cat}: only {c['total']} pairs (< {minimum})")
    kind = SINGLE_CATS.get(cat) or CONV_CATS.get(cat)
    if kind == "both" and (c["true"] == 0 or c["false"] == 0):
        errors.append(f"{cat}: needs both labels")
    frac = c["heldout"] / c["total"] if c["total"] else 0
    if not 0.3 <= frac <= 0.5:
        errors.append(f"{cat}: heldout fraction {frac:.2f}")
print("-" * len(hdr))
for name, c in list(sub.items()) + [("ALL", tot)]:
    print(f"{name:20} {c['total']:5} {c['true']:5} {c['false']:5} {c['tune']:5} {c['heldout']:7}  "
          f"{str(c['tune_true']) + '/' + str(c['tune_false']):>9} {str(c['heldout_true']) + '/' + str(c['heldout_false']):>11}")
share = tot["true"] / tot["total"]
print(f"\nsame_answer=true share: {share:.1%}")
if sub["single"]["total"] < 400:
    errors.append("fewer than 400 single-question pairs")
if sub["conversation"]["total"] < 100:
    errors.append("fewer than 100 conversation pairs")
if not 0.45 <= share <= 0.55:
    errors.append(f"true share {share:.1%} outside 45-55%")

if errors:
    print("\nFAILED:")
    for e in errors:
        print("  " + e)
    sys.exit(1)
print("all checks passed")
