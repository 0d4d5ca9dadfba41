#!/usr/bin/env python3
"""The packed weight formats side by side: the dense DINOv2-S/14 backbone at 8, 4, 3 and 2 bits
(fips quantize --bits B: q8, q4g32, q3g32, q2g32) against onnxruntime's dynamic int8, same machine,
same run, batch 1; then instructions executed by the aarch64 builds under qemu.

    python3 Benchmarks/weight_formats.py [--threads 2] [--runs 30] [--no-qemu]

Timing, artifact bytes and peak RSS use Benchmarks/int8_vs_onnxruntime.py's code (fips-run --bench
from ./boards/build x86-64 --release; onnxruntime in a child process), alternating the engines twice
and taking medians. Instructions: one image (load, decode, forward), 1 thread, under qemu-aarch64
with the TCG plugin Benchmarks/qemu/insn_count.c, for the rpi4 (cortex-a72, NEON) and rpi5
(cortex-a76, SDOT) builds: a proxy for the boards' time, not a measurement of it.
Writes Benchmarks/weight_formats.md; models are kept in data/bench_int8/.
"""
import argparse
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Benchmarks"))
import int8_vs_onnxruntime as base  # noqa: E402
from bench_common import FIPS  # noqa: E402

BITS = [8, 4, 3, 2]


def models():
    os.makedirs(base.OUT, exist_ok=True)
    fp32 = os.path.join(ROOT, "data/dinov2_s.fips")
    if not os.path.exists(fp32):
        base.sh([FIPS, "import", os.path.join(ROOT, "data/vit_s_focus.onnx"), "-o", fp32])
    out = {}
    for bits in BITS:
        q = os.path.join(base.OUT, f"dense.q{bits}.fips")
        if not os.path.exists(q):
            base.sh([FIPS, "quantize", "--model", fp32, "--calib", "fashion-mnist", "--calib-images", "64",
                     "--bits", str(bits), "-o", q])
        out[bits] = q
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-qemu", action="store_true")
    a = ap.parse_args()
    dense = models()
    host = base.board_build("x86-64")
    _, ort_int8 = base.ort_models(os.path.join(ROOT, "data/vit_s_focus.onnx"))
    rows = {k: [] for k in ["ort_int8"] + BITS}
    for _ in range(2):
        rows["ort_int8"].append(base.time_ort(ort_int8, a.threads, a.runs, a.warmup))
        for bits in BITS:
            rows[bits].append(base.time_fips(dense[bits], a.threads, a.runs + a.warmup, host))
    med = {k: statistics.median(r["median_ms"] for r in v) for k, v in rows.items()}
    rss = {k: max(r["peak_rss"] for r in v) for k, v in rows.items()}
    o8 = med["ort_int8"]
    lines = [f"DINOv2-S/14 backbone, dense, batch 1, 224x224, {a.threads} threads, median of {a.runs} runs x2, "
             f"integer kernel {rows[8][0]['kernel']}",
             "| engine | model bytes | median ms | vs ORT int8 | vs q8 | peak RSS |", "|---|---|---|---|---|---|",
             f"| onnxruntime quantize_dynamic QInt8 | {os.path.getsize(ort_int8) / 1e6:.1f} MB | {o8:.2f} | 1.00x | — | "
             f"{rss['ort_int8'] / 1e6:.1f} MB |"]
    for bits in BITS:
        name = "q8" if bits == 8 else f"q{bits}g32"
        lines.append(f"| fips-run {name} | {os.path.getsize(dense[bits]) / 1e6:.1f} MB | {med[bits]:.2f} | "
                     f"{med[bits] / o8:.2f}x | {med[bits] / med[8]:.2f}x | {rss[bits] / 1e6:.1f} MB |")
    result = {"median_ms": {str(k): v for k, v in med.items()}, "peak_rss": {str(k): v for k, v in rss.items()}}
    if not a.no_qemu:
        counts = {}
        for board, cpu in [("rpi4", "cortex-a72"), ("rpi5", "cortex-a76")]:
            exe = base.board_build(board)
            for bits in BITS:
                counts[(board, bits)] = base.insn_count(cpu, exe, dense[bits])
        result["qemu_instructions"] = {f"{b}/q{bits}": c[0] for (b, bits), c in counts.items()}
        lines += ["", "instructions executed under qemu-aarch64 (a proxy), one image (load, decode, forward), 1 thread:",
                  "| build | qemu -cpu | kernel | q8 | q4g32 | q3g32 | q2g32 | q4 / q8 | q2 / q8 | q2 / q4 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for board, cpu in [("rpi4", "cortex-a72"), ("rpi5", "cortex-a76")]:
            c = {bits: counts[(board, bits)][0] for bits in BITS}
            lines.append(f"| {board} | {cpu} | {counts[(board, 8)][1]} | " + " | ".join(f"{c[b] / 1e9:.3f} G" for b in BITS)
                         + f" | {c[4] / c[8]:.3f} | {c[2] / c[8]:.3f} | {c[2] / c[4]:.3f} |")
    print("\n".join(lines))
    with open(os.path.join(base.OUT, "weight_formats.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    with open(os.path.join(ROOT, "Benchmarks/weight_formats.md"), "w") as fh:
        fh.write("<!-- written by Benchmarks/weight_formats.py -->\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
