#!/usr/bin/env python3
"""Top-1 accuracy of classifier result lines (fipsd or fips-run JSON lines)
against the true labels (truth.csv from scripts/fashion_mnist_images.py).

    python3 scripts/score_results.py RESULTS.jsonl TRUTH.csv [--show 10]

Prints a few results beside their true label and the accuracy; exit 1 when an
image of the truth file has no result or a result has no label.
"""
import argparse
import csv
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("truth")
    ap.add_argument("--show", type=int, default=10, help="results to print beside their true label")
    a = ap.parse_args()
    with open(a.truth, newline="") as f:
        truth = {row["file"]: row["label"] for row in csv.DictReader(f)}
    got = {}
    with open(a.results) as f:
        for line in f:
            if line.strip():
                j = json.loads(line)
                name = os.path.basename(j.get("file") or j.get("image") or "")
                if name in truth:
                    got[name] = j
    missing = sorted(set(truth) - set(got))
    if missing:
        sys.exit(f"score_results: {len(missing)} images without a result, e.g. {missing[:3]}")
    right = 0
    for i, name in enumerate(sorted(truth)):
        top = got[name].get("top")
        if not top:
            sys.exit(f"score_results: {name}: no labels in {json.dumps(got[name])[:200]} (a model without a head?)")
        ok = top[0]["label"] == truth[name]
        right += ok
        if i < a.show:
            print(f"{name}: {top[0]['label']} ({top[0]['score']:.2f})  true: {truth[name]}  {'ok' if ok else 'WRONG'}")
    print(f"top-1 accuracy: {right}/{len(truth)} = {100 * right / len(truth):.1f}%")


if __name__ == "__main__":
    main()
