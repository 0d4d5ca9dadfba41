#!/usr/bin/env python3
"""Accuracy of the integer runtime on the Fashion-MNIST protocol of
Benchmarks/compression_table.py: DINOv2-S/14 with a linear head trained on
2,000 training images (200 per class), top-1 on the first 200 test images per
class, quantisation calibrated on 64 other training images. Every quantised
model runs on the device runtime (mapped artifact, integer GEMM kernels, int8
activations); the fp32 row on the host's float path.

    python3 Benchmarks/quant_accuracy.py [--only q8,q4] [--calib-images 128]

Rows: weight bits × rounding (GPTQ vs round-to-nearest) × activation scales
(dynamic per token, or static per tensor: MSE / percentile, with and
without SmoothQuant), and the I-ViT
integer non-linearities (Shiftmax, ShiftGELU, I-LayerNorm) on the int8 model,
each alone and all together. Resumable: results are kept in
data/bench_quant/results.json. Writes Benchmarks/quant_accuracy.md.
"""
import argparse
import json
import os
import sys

import bench_common as bench
from bench_common import FIPS, ROOT

OUT = os.path.join(ROOT, "data/bench_quant")
RESULTS = os.path.join(OUT, "results.json")
HEAD = os.path.join(ROOT, "data/bench_compression/original_head.fips")

# name: (quantise flags, eval flags, description)
VARIANTS = {
    "q8": (["--bits", "8"], [], "int8 weights (GPTQ), dynamic per-token int8 activations (the default)"),
    "q8-nearest": (["--bits", "8", "--rounding", "nearest"], [], "int8 weights (round-to-nearest), dynamic activations"),
    "q8-static-mse": (["--bits", "8", "--act-calibration", "mse"], [], "int8 (GPTQ), static per-tensor activations (MSE clip, SmoothQuant 0.5)"),
    "q8-static-p9999": (["--bits", "8", "--act-calibration", "percentile:99.99"], [], "int8 (GPTQ), static per-tensor activations (99.99th percentile, SmoothQuant 0.5)"),
    "q8-static-nosmooth": (["--bits", "8", "--act-calibration", "mse", "--smooth", "0"], [], "int8 (GPTQ), static per-tensor activations (MSE), no smoothing"),
    "q8-static-fc2dyn": (["--bits", "8", "--act-calibration", "mse", "--dynamic-inputs", "mlp.fc2"], [], "int8 (GPTQ), static activations except fc2's input (per token)"),
    "q4": (["--bits", "4"], [], "4-bit weights g32 (GPTQ), dynamic activations"),
    "q4-nearest": (["--bits", "4", "--rounding", "nearest"], [], "4-bit weights g32 (round-to-nearest), dynamic activations"),
    "q3": (["--bits", "3"], [], "3-bit weights g32 (GPTQ), dynamic activations"),
    "q8-float-attention": (["--bits", "8"], ["--float-attention"], "int8, Q·Kᵀ and P·V in float"),
    "q8+softmax": (["--bits", "8"], ["--integer-nonlinear", "softmax"], "int8 + integer Shiftmax"),
    "q8+gelu": (["--bits", "8"], ["--integer-nonlinear", "gelu"], "int8 + integer ShiftGELU"),
    "q8+layernorm": (["--bits", "8"], ["--integer-nonlinear", "layernorm"], "int8 + integer LayerNorm"),
    "q8+all": (["--bits", "8"], ["--integer-nonlinear", "all"], "int8 + all three integer non-linearities"),
}


def run(args):
    return bench.run([FIPS] + args, echo="fips " + " ".join(args),
                     fail=lambda p: f"fips {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}").stdout


def evaluate(model, extra=()):
    out = run(["eval", "--model", model, "--fashion-mnist", "--per-class", "200", "--reference", HEAD,
               "--reference-cache", os.path.join(OUT, "reference.cache"), "--json", *extra])
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated variant names (default: all)")
    ap.add_argument("--calib-images", default="64")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(os.path.dirname(HEAD), exist_ok=True)
    results = json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}

    def save():
        json.dump(results, open(RESULTS + ".tmp", "w"), indent=1, sort_keys=True)
        os.replace(RESULTS + ".tmp", RESULTS)

    if not os.path.exists(HEAD):
        run(["head", "--model", os.path.join(ROOT, "data/dinov2_s.fips"), "--fashion-mnist", "--per-class", "200", "-o", HEAD])
    if "fp32" not in results:
        results["fp32"] = evaluate(HEAD)
        save()
    names = a.only.split(",") if a.only else list(VARIANTS)
    for name in names:
        if name in results:
            continue
        qflags, eflags, _ = VARIANTS[name]
        path = os.path.join(OUT, "head." + "_".join(qflags).replace("-", "").replace(":", "") + ".fips")
        if not os.path.exists(path):
            run(["quantize", "--model", HEAD, "--calib", "fashion-mnist", "--calib-images", a.calib_images, *qflags, "-o", path])
        r = evaluate(path, eflags)
        r["bytes"] = os.path.getsize(path)
        results[name] = r
        save()
        print(f"{name}: top-1 {100 * r['top1']:.2f}% ({100 * (r['top1'] - results['fp32']['top1']):+.2f} pt)", flush=True)

    base = results["fp32"]["top1"]
    rows = ["| model | artifact | top-1 | vs fp32 | mean CLS cosine |", "|---|---|---|---|---|",
            f"| fp32 (float path) | {os.path.getsize(HEAD) / 1e6:.1f} MB | {100 * base:.2f}% | — | 1.000000 |"]
    for name, (_, _, desc) in VARIANTS.items():
        if name not in results:
            continue
        r = results[name]
        rows.append(f"| `{name}`: {desc} | {r['bytes'] / 1e6:.1f} MB | {100 * r['top1']:.2f}% | "
                    f"{100 * (r['top1'] - base):+.2f} pt | {r['mean_cls_cosine']:.6f} |")
    with open(os.path.join(ROOT, "Benchmarks/quant_accuracy.md"), "w") as fh:
        fh.write("<!-- written by Benchmarks/quant_accuracy.py -->\n" + "\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
