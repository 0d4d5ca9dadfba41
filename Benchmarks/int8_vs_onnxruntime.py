#!/usr/bin/env python3
"""The integer runtime against onnxruntime's dynamic int8, same model, same
machine, 2 threads, batch 1, in one run; medians and ratios.

    python3 Benchmarks/int8_vs_onnxruntime.py [--threads 2] [--runs 30] [--no-qemu]

Rows:
  onnxruntime 1.32 fp32 and quantize_dynamic(QInt8) of the DINOv2-S/14
  backbone (data/vit_s_focus.onnx cut at the backbone output, as in
  forward_vs_onnxruntime.py);
  fips-run on the dense int8 artifact (fips quantize --bits 8) and on the FiPS
  model at 33% whole-model compression, int8, with dense (s=0) and 50%-sparse
  projections.
Also: peak RSS of each process; size of the static aarch64 fips-run
(./boards/build rpi4 --release) against onnxruntime's aarch64 library from
the PyPI wheel; and instructions executed by the aarch64 builds under
qemu-aarch64 (TCG plugin Benchmarks/qemu/insn_count.c), one image, 1 thread,
for the cortex-a72 (rpi4: NEON, no dotprod) and cortex-a76 (rpi5: SDOT) builds.

Builds what it needs into data/bench_int8/ (kept between runs): the
quantised artifacts (64 Fashion-MNIST calibration images), the FiPS models
(256 calibration images, 200 reconstruction steps), the two board builds,
the qemu plugin, the onnxruntime wheel. Needs scripts/setup.sh and
swift build -c release.
"""
import argparse
import glob
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Benchmarks"))
from forward_vs_onnxruntime import cut_at_backbone  # noqa: E402

import bench_common as bench  # noqa: E402
import qemu_counts  # noqa: E402
from bench_common import FIPS, FIPS_RUN  # noqa: E402

OUT = os.path.join(ROOT, "data/bench_int8")
PHOTO = os.path.join(ROOT, "data/photos/chelsea.png")
# 33% of DINOv2-S's 21,628,800 backbone parameters, all taken from the
# 14,155,776 MLP weights (as Benchmarks/compression_table.py).
MLP_BUDGET_33 = 1 - 0.33 * 21_628_800 / 14_155_776


def sh(args, **kw):
    shown = ["<child>" if "\n" in a else os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in args]
    return bench.run(args, echo=" ".join(shown),
                     fail=lambda p: f"{args[0]} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}", **kw)


def make_models():
    os.makedirs(OUT, exist_ok=True)
    fp32 = os.path.join(ROOT, "data/dinov2_s.fips")
    if not os.path.exists(fp32):
        sh([FIPS, "import", os.path.join(ROOT, "data/vit_s_focus.onnx"), "-o", fp32])
    dense = os.path.join(OUT, "dense.q8.fips")
    if not os.path.exists(dense):
        sh([FIPS, "quantize", "--model", fp32, "--calib", "fashion-mnist", "--calib-images", "64", "--bits", "8", "-o", dense])
    # FiPS at 33%: dense projections (rank 184 per group of 4 blocks: fewer
    # MACs than the dense MLP) and 50% sparse ones (rank 358: fewer bytes,
    # but the sparse tiles are expanded and multiplied densely).
    fips = {}
    for sparsity in ["0", "0.5"]:
        f = os.path.join(OUT, f"fips33_s{sparsity}.fips")
        if not os.path.exists(f):
            sh([FIPS, "compress", "--model", fp32, "--calib", "fashion-mnist", "--calib-images", "256",
                "--mlp-budget", f"{MLP_BUDGET_33:.4f}", "--sparsity", sparsity, "--steps", "200", "--activation-aware",
                "-o", f])
        q = os.path.join(OUT, f"fips33_s{sparsity}.q8.fips")
        if not os.path.exists(q):
            sh([FIPS, "quantize", "--model", f, "--calib", "fashion-mnist", "--calib-images", "64", "--bits", "8", "-o", q])
        fips[sparsity] = q
    return fp32, dense, fips["0"], fips["0.5"]


def ort_models(onnx_path):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    fp32 = os.path.join(OUT, "backbone.onnx")
    int8 = os.path.join(OUT, "backbone.int8.onnx")
    if not os.path.exists(fp32):
        onnx.save(cut_at_backbone(onnx.load(onnx_path)), fp32)
    if not os.path.exists(int8):
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
    return fp32, int8


# One child process per engine, so each peak RSS is its own.
ORT_CHILD = r"""
import json, resource, statistics, sys, time
import numpy as np, onnxruntime as ort
path, threads, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
n = s.get_inputs()[0].name
for _ in range(warmup): s.run(None, {n: x})
t = []
for _ in range(runs):
    t0 = time.perf_counter(); s.run(None, {n: x}); t.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({"median_ms": statistics.median(t), "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "baseline_rss": base}))
"""


def time_ort(path, threads, runs, warmup):
    p = sh([sys.executable, "-c", ORT_CHILD, path, str(threads), str(runs), str(warmup)])
    return json.loads(p.stdout.strip().splitlines()[-1])


def time_fips(model, threads, runs, exe=FIPS_RUN):
    # --bench: the median of `runs` forward passes on one decoded image (the
    # first pass faults the mapped weights in; the median ignores it).
    p = sh([exe, "--model", model, "--threads", str(threads), "--bench", str(runs), "--verbose", PHOTO])
    line = json.loads(p.stdout.strip().splitlines()[-1])
    rss = int(re.search(r"peak RSS (\d+)", p.stderr).group(1))
    arena = int(re.search(r"activation arena (\d+)", p.stderr).group(1))
    kernel = re.search(r"integer kernel (\S+)", p.stderr).group(1).rstrip(",")
    return {"median_ms": line["forward_ms"], "peak_rss": rss, "arena": arena, "kernel": kernel}


def board_build(board):
    exe = bench.board_binary(board, "fips-run")
    sh([os.path.join(ROOT, "boards/build"), board, "--release"])
    return exe


def ort_aarch64_library():
    """onnxruntime's aarch64 runtime as PyPI ships it: the Python extension
    module holds the whole runtime (the wheel has no separate libonnxruntime.so)."""
    whl = glob.glob(os.path.join(OUT, "onnxruntime-1.32.0-*aarch64*.whl"))
    if not whl:
        sh([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
            "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux2014_aarch64",
            "--python-version", "3.11", "onnxruntime==1.32.0", "-d", OUT])
        whl = glob.glob(os.path.join(OUT, "onnxruntime-1.32.0-*aarch64*.whl"))
    with zipfile.ZipFile(whl[0]) as z:
        libs = [(i.filename, i.file_size) for i in z.infolist() if re.search(r"\.so(\.|$)", i.filename)]
    return os.path.basename(whl[0]), libs


def insn_count(qemu_cpu, exe, model):
    n, p = qemu_counts.count(["qemu-aarch64", "-cpu", qemu_cpu],
                             [exe, "--model", model, "--threads", "1", "--verbose", PHOTO], OUT)
    return n, re.search(r"integer kernel (\S+)", p.stderr).group(1).rstrip(",")


def mb(b):
    return b / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--onnx", default=os.path.join(ROOT, "data/vit_s_focus.onnx"))
    ap.add_argument("--no-qemu", action="store_true", help="skip the board builds and qemu instruction counts")
    ap.add_argument("--json", default=os.path.join(OUT, "int8_results.json"))
    a = ap.parse_args()

    _, dense, fips33, fips33s = make_models()
    # fips-run as built for this host board (boards/x86-64.board: -target-cpu
    # haswell, so the Swift float code gets AVX2; the integer kernels pick
    # AVX-512 VNNI at run time either way). The generic SwiftPM build
    # (x86-64 baseline SSE2 for the Swift code) is timed too, on the dense model.
    host = board_build("x86-64")
    ort_fp32, ort_int8 = ort_models(a.onnx)
    import onnxruntime as ort

    # Alternate the engines twice so drift on a shared machine hits all.
    rows = {k: [] for k in ["ort_fp32", "ort_int8", "dense", "fips33", "fips33s", "dense_generic"]}
    for _ in range(2):
        rows["ort_fp32"].append(time_ort(ort_fp32, a.threads, a.runs, a.warmup))
        rows["ort_int8"].append(time_ort(ort_int8, a.threads, a.runs, a.warmup))
        rows["dense"].append(time_fips(dense, a.threads, a.runs + a.warmup, host))
        rows["fips33"].append(time_fips(fips33, a.threads, a.runs + a.warmup, host))
        rows["fips33s"].append(time_fips(fips33s, a.threads, a.runs + a.warmup, host))
        rows["dense_generic"].append(time_fips(dense, a.threads, a.runs + a.warmup))
    med = {k: statistics.median(r["median_ms"] for r in v) for k, v in rows.items()}
    rss = {k: max(r["peak_rss"] for r in v) for k, v in rows.items()}
    o8 = med["ort_int8"]
    result = {"threads": a.threads, "runs": a.runs, "median_ms": med, "peak_rss": rss,
              "ratio_dense_vs_ort_int8": med["dense"] / o8, "ratio_fips33_vs_ort_int8": med["fips33"] / o8,
              "ratio_fips33_sparse_vs_ort_int8": med["fips33s"] / o8,
              "ratio_dense_generic_vs_ort_int8": med["dense_generic"] / o8,
              "ort_python_baseline_rss": rows["ort_int8"][0]["baseline_rss"],
              "artifact_bytes": {"dense": os.path.getsize(dense), "fips33": os.path.getsize(fips33),
                                 "fips33s": os.path.getsize(fips33s),
                                 "ort_int8": os.path.getsize(ort_int8), "ort_fp32": os.path.getsize(ort_fp32)},
              "arena_bytes": {k: rows[k][0]["arena"] for k in ["dense", "fips33", "fips33s"]},
              "x86_kernel": rows["dense"][0]["kernel"]}

    lines = [f"DINOv2-S/14 backbone, batch 1, 224x224, {a.threads} threads, median of {a.runs} runs x2, "
             f"onnxruntime {ort.__version__}, integer kernel {result['x86_kernel']}",
             "| engine | model bytes | median ms | vs ORT int8 | peak RSS |", "|---|---|---|---|---|"]
    names = [("ort_fp32", "onnxruntime fp32", "ort_fp32"), ("ort_int8", "onnxruntime quantize_dynamic QInt8", "ort_int8"),
             ("dense", "fips-run dense int8 (q8, per-token act. scales)", "dense"),
             ("fips33", "fips-run FiPS 33% (s=0, rank 184) int8", "fips33"),
             ("fips33s", "fips-run FiPS 33% (s=0.5, rank 358) int8", "fips33s"),
             ("dense_generic", "fips-run dense int8, generic SwiftPM build", "dense")]
    for k, label, size_key in names:
        lines.append(f"| {label} | {mb(result['artifact_bytes'][size_key]):.1f} MB | {med[k]:.2f} | {med[k] / o8:.2f}x | "
                     f"{mb(rss[k]):.1f} MB |")
    lines.append(f"(ORT peak RSS includes the Python interpreter with numpy and onnxruntime imported: "
                 f"{mb(result['ort_python_baseline_rss']):.1f} MB before the session. fips-run: build/x86-64/fips-run "
                 f"from ./boards/build x86-64 --release unless the row says generic; its peak RSS is VmHWM.)")

    if not a.no_qemu:
        rpi4, rpi5 = board_build("rpi4"), board_build("rpi5")
        wheel, libs = ort_aarch64_library()
        result["fips_run_aarch64_bytes"] = {"rpi4": os.path.getsize(rpi4), "rpi5": os.path.getsize(rpi5)}
        result["ort_aarch64_libraries"] = {"wheel": wheel, "libs": dict(libs)}
        lines.append("")
        lines.append(f"static aarch64 fips-run: {os.path.getsize(rpi4):,} bytes (rpi4), {os.path.getsize(rpi5):,} bytes (rpi5); "
                     f"onnxruntime aarch64 ({wheel}): " + ", ".join(f"{os.path.basename(n)} {s:,} bytes" for n, s in libs))
        counts = {}
        for board, cpu, exe in [("rpi4", "cortex-a72", rpi4), ("rpi5", "cortex-a76", rpi5)]:
            for k, model in [("dense", dense), ("fips33", fips33), ("fips33s", fips33s)]:
                counts[f"{board}/{k}"] = insn_count(cpu, exe, model)
        result["qemu_instructions"] = {k: {"instructions": v[0], "kernel": v[1]} for k, v in counts.items()}
        lines += ["", "instructions executed under qemu-aarch64, one image (load, decode, forward), 1 thread:",
                  "| build | qemu -cpu | kernel | dense int8 | FiPS 33% s=0 int8 | FiPS / dense | FiPS 33% s=0.5 int8 |",
                  "|---|---|---|---|---|---|---|"]
        for board, cpu in [("rpi4", "cortex-a72"), ("rpi5", "cortex-a76")]:
            d, f, fs = counts[f"{board}/dense"], counts[f"{board}/fips33"], counts[f"{board}/fips33s"]
            lines.append(f"| {board} | {cpu} | {d[1]} | {d[0] / 1e9:.2f} G | {f[0] / 1e9:.2f} G | {f[0] / d[0]:.2f} | "
                         f"{fs[0] / 1e9:.2f} G |")

    print("\n".join(lines))
    with open(a.json, "w") as fh:
        json.dump(result, fh, indent=1)
    with open(os.path.join(ROOT, "Benchmarks/int8_results.md"), "w") as fh:
        fh.write("<!-- written by Benchmarks/int8_vs_onnxruntime.py -->\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
