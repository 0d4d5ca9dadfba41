#!/usr/bin/env python3
"""FiPS vs per-layer SVD on DINOv2-S/14 with a Fashion-MNIST linear head.

Protocol (compression issue): head trained on 2,000 Fashion-MNIST training
images (the first 200 per class), evaluated on 2,000 test images (the first
200 per class), calibration on 256 other training images. For each method
and whole-model compression level: top-1 with the original head and with a
refitted head (one forward pass scores both), mean CLS cosine to the original
model, and the compression time (calibration + factorisation + reconstruction).

    python3 Benchmarks/compression_table.py [--levels 0.33,0.20,0.45,0.57] [--methods fips,svd]

Resumable: finished runs are kept in data/bench_compression/results.json and
skipped. Writes Benchmarks/compression_results.md and compression_top1.svg.
"""
import argparse
import json
import os
import re
import time

import bench_common as bench
from bench_common import FIPS, ROOT

OUT = os.path.join(ROOT, "data/bench_compression")
RESULTS = os.path.join(OUT, "results.json")


def run(args, capture=True):
    return bench.run([FIPS] + args, echo="fips " + " ".join(args), capture=capture,
                     fail=lambda p: f"fips {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}").stdout


def mlp_budget_for(compression, backbone, mlp_weights):
    # whole-model compression c removes c·backbone parameters, all from MLP weights.
    return 1 - compression * backbone / mlp_weights


def load_results():
    return json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}


def save_results(r):
    json.dump(r, open(RESULTS + ".tmp", "w"), indent=1, sort_keys=True)
    os.replace(RESULTS + ".tmp", RESULTS)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="0.33,0.20,0.45,0.57")
    ap.add_argument("--methods", default="fips,svd")
    ap.add_argument("--sparsity", default="0")
    ap.add_argument("--steps", default="600")
    ap.add_argument("--lr", default="3e-4")
    ap.add_argument("--plain", action="store_true", help="plain SVD initialisation instead of activation-aware")
    ap.add_argument("--model", default=os.path.join(ROOT, "data/dinov2_s.fips"))
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    results = load_results()
    original = os.path.join(OUT, "original_head.fips")
    cache = os.path.join(OUT, "reference.cache")
    if not os.path.exists(original):
        run(["head", "--model", a.model, "--fashion-mnist", "--per-class", "200", "-o", original], capture=False)
    if "original" not in results:
        out = run(["eval", "--model", original, "--fashion-mnist", "--per-class", "200", "--reference", original,
                   "--reference-cache", cache, "--json"])
        results["original"] = json.loads(out.strip().splitlines()[-1])
        save_results(results)
    # DINOv2-S: backbone parameters and MLP weights (fc1 + fc2 of 12 blocks), from the report of a compress run.
    backbone, mlp_weights = 21_628_800, 12 * 2 * 384 * 1536
    for level in [float(x) for x in a.levels.split(",")]:
        for method in a.methods.split(","):
            init = "plain" if a.plain else "aa"
            key = f"{method}@{level:.2f}/s{a.sparsity}/{init}/lr{a.lr}/steps{a.steps}"
            if key in results:
                continue
            budget = mlp_budget_for(level, backbone, mlp_weights)
            path = os.path.join(OUT, f"{method}_{int(round(level * 100))}_s{a.sparsity}.fips")
            t0 = time.time()
            log = run(["compress", "--model", original, "--calib", "fashion-mnist", "--calib-images", "256",
                       "--mlp-budget", f"{budget:.4f}", "--method", method, "--sparsity", a.sparsity,
                       "--steps", a.steps, "--lr", a.lr, "--refit-head", "fashion-mnist", "-o", path]
                      + (["--no-activation-aware"] if a.plain else []))
            wall = time.time() - t0
            m = re.search(r"whole-model compression ([\d.]+)%", log)
            stages = dict((k, float(v)) for k, v in re.findall(r"(\w[\w ]*?) ([\d.]+) s", log.splitlines()[-1]))
            compress_s = stages.get("calibration", 0) + stages.get("compression", 0)
            ev = json.loads(run(["eval", "--model", path, "--fashion-mnist", "--per-class", "200", "--reference", original,
                                 "--reference-cache", cache, "--also-head", original, "--json"]).strip().splitlines()[-1])
            results[key] = {
                "method": method, "target": level, "init": init, "lr": float(a.lr), "steps": int(a.steps), "mlp_budget": budget, "sparsity": float(a.sparsity),
                "compression": float(m.group(1)) / 100 if m else None,
                "top1_refit": ev["top1"], "top1_original_head": ev["extra_top1"][0],
                "cls_cosine": ev["mean_cls_cosine"], "compress_seconds": compress_s, "wall_seconds": wall,
                "report": log,
            }
            save_results(results)
            print(json.dumps({k: v for k, v in results[key].items() if k != "report"}), flush=True)
    write_table(results)


def write_table(results):
    o = results.get("original", {})
    rows = ["| model | whole-model compression | top-1 (original head) | top-1 (refitted head) | mean CLS cosine | compression time |",
            "|---|---|---|---|---|---|",
            f"| DINOv2-S/14 original | 0% | {100 * o.get('top1', 0):.2f}% | — | 1.000000 | — |"]
    runs = sorted((v for k, v in results.items() if k != "original"), key=lambda v: (v["target"], v["method"]))
    for v in runs:
        rows.append(f"| {v['method'].upper()} (s={v['sparsity']:g}, {v.get('init', 'aa')} init) | {100 * v['compression']:.1f}% | "
                    f"{100 * v['top1_original_head']:.2f}% | {100 * v['top1_refit']:.2f}% | {v['cls_cosine']:.6f} | "
                    f"{v['compress_seconds'] / 60:.1f} min |")
    md = os.path.join(ROOT, "Benchmarks/compression_results.md")
    with open(md, "w") as f:
        f.write("<!-- written by Benchmarks/compression_table.py -->\n" + "\n".join(rows) + "\n")
    write_svg(o.get("top1", 0), runs, os.path.join(ROOT, "Benchmarks/compression_top1.svg"))
    print("\n".join(rows))


def write_svg(base, runs, path):
    W, H, L, B = 560, 360, 60, 50
    def x(c): return L + c / 0.6 * (W - L - 20)
    def y(t): return H - B - (t - 0.0) / 1.0 * (H - B - 20)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<line x1="{L}" y1="{H-B}" x2="{W-20}" y2="{H-B}" stroke="black"/><line x1="{L}" y1="20" x2="{L}" y2="{H-B}" stroke="black"/>',
             f'<text x="{W/2}" y="{H-12}" text-anchor="middle">whole-model compression</text>',
             f'<text x="16" y="{H/2}" transform="rotate(-90 16 {H/2})" text-anchor="middle">Fashion-MNIST top-1</text>']
    for c in [0, 0.2, 0.33, 0.45, 0.57]:
        parts.append(f'<text x="{x(c)}" y="{H-B+16}" text-anchor="middle">{int(round(c*100))}%</text>')
    for t in [0, 0.2, 0.4, 0.6, 0.8, 1.0]:
        parts.append(f'<text x="{L-6}" y="{y(t)+4}" text-anchor="end">{int(t*100)}</text>')
        parts.append(f'<line x1="{L}" y1="{y(t)}" x2="{W-20}" y2="{y(t)}" stroke="#ddd"/>')
    colors = {("fips", "top1_refit"): "#c0392b", ("fips", "top1_original_head"): "#e8a09a",
              ("svd", "top1_refit"): "#2c3e8c", ("svd", "top1_original_head"): "#9aa6e8"}
    ly = 30
    for (method, field), color in colors.items():
        pts = [(0, base)] + [(v["compression"], v[field]) for v in runs if v["method"] == method and v["sparsity"] == 0]
        if len(pts) < 2:
            continue
        d = " ".join(f"{x(c):.1f},{y(t):.1f}" for c, t in pts)
        parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts += [f'<circle cx="{x(c):.1f}" cy="{y(t):.1f}" r="3" fill="{color}"/>' for c, t in pts]
        label = f"{method.upper()}, {'refitted head' if field == 'top1_refit' else 'original head'}"
        parts.append(f'<rect x="{W-200}" y="{ly-9}" width="10" height="10" fill="{color}"/><text x="{W-185}" y="{ly}">{label}</text>')
        ly += 16
    # Sparse-projection runs as separate diamonds (one line per method is the dense sweep).
    for v in runs:
        if v["sparsity"] > 0:
            for field in ("top1_refit", "top1_original_head"):
                c, t = x(v["compression"]), y(v[field])
                parts.append(f'<path d="M{c:.1f},{t-6:.1f} L{c+6:.1f},{t:.1f} L{c:.1f},{t+6:.1f} L{c-6:.1f},{t:.1f} Z" '
                             f'fill="{colors[(v["method"], field)]}" stroke="black"/>')
    if any(v["sparsity"] > 0 for v in runs):
        parts.append(f'<path d="M{W-195},{ly-10} L{W-190},{ly-5} L{W-195},{ly} L{W-200},{ly-5} Z" fill="#888" stroke="black"/>'
                     f'<text x="{W-185}" y="{ly}">sparse V (s=0.5)</text>')
    parts.append("</svg>")
    open(path, "w").write("\n".join(parts))


if __name__ == "__main__":
    main()
