#!/usr/bin/env python3
"""The integer runtime against onnxruntime on aarch64, side by side: instructions
per image under qemu-aarch64 for the Cortex-A72 (rpi4) and Cortex-A76 (rpi5)
builds, and where fips-run's instructions go.

    python3 Benchmarks/arm_vs_onnxruntime.py [--no-build] [--extra-model LABEL=PATH ...] [--out Benchmarks/arm_results.md]

For each CPU (qemu-aarch64 -cpu cortex-a72 with build/rpi4/fips-run, -cpu
cortex-a76 with build/rpi5/fips-run):
  fips-run, one thread, on DINOv2-S/14 int8 (fips import data/vit_s_focus.onnx
  --bits 8 --calib data/photos): instructions per image = a run on two images
  minus a run on one (same PNG twice): decode + preprocess + forward of one
  image; loading the artifact (and its CRC) cancels out.
  onnxruntime 1.19.2 (aarch64 wheel, Benchmarks/aarch64_python.py), one
  intra-op thread, on the same backbone graph (cut as in
  forward_vs_onnxruntime.py) after quantize_dynamic(QInt8) of its MatMuls only
  (op_types_to_quantize=["MatMul"]: the patch embedding's Conv stays fp32,
  since ConvInteger has no aarch64 kernel), quantised on this host with its
  onnxruntime: instructions per image = a process with one inference minus one
  with none (the session is created in both); forward only, on a fixed
  preprocessed tensor. A third process with two inferences checks that the
  second costs what the first does.
  Attribution: fips-run under Benchmarks/qemu/insn_by_symbol.c on one and on
  two images, the difference per function, grouped by arm_attribution.py.
Counts come from Benchmarks/qemu/insn_count.c (qemu_counts.py). Instructions
under qemu are a proxy for time on the board: see README ("On the boards").

Caches in data/arm_bench/ (the int8 artifact, the quantised ONNX, the compiled
plugins, the raw counts); the aarch64 Python in data/aarch64_python/. Needs
swift build -c release (for fips), qemu-user, the arm64 packages of
scripts/setup.sh; --no-build uses build/rpi4 and build/rpi5 as they are.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import aarch64_python
import arm_attribution
import bench_common as bench
import qemu_counts
from bench_common import FIPS

ROOT = bench.ROOT
OUT = os.path.join(ROOT, "data/arm_bench")
ONNX = os.path.join(ROOT, "data/vit_s_focus.onnx")
PHOTO = os.path.join(ROOT, "data/photos/chelsea.png")
CPUS = [("cortex-a72", "rpi4"), ("cortex-a76", "rpi5")]

# One process per count: numpy, onnxruntime and the session are set up in
# every run, so the difference between RUNS=1 and RUNS=0 is one inference.
ORT_CHILD = r"""
import sys
import numpy as np, onnxruntime as ort
path, runs = sys.argv[1], int(sys.argv[2])
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
n = s.get_inputs()[0].name
for _ in range(runs):
    y = s.run(None, {n: x})[0]
print("ort-runs", runs, ort.__version__)
"""


def sh(cmd, **kw):
    return bench.run(cmd, echo=bench.shown(cmd),
                     fail=lambda p: f"{cmd[0]} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}", **kw)


def fips_model():
    path = os.path.join(OUT, "dinov2_s.q8.fips")
    if not os.path.exists(path):
        sh([FIPS, "import", ONNX, "--bits", "8", "--calib", os.path.join(ROOT, "data/photos"), "-o", path + ".tmp"])
        os.rename(path + ".tmp", path)
    return path


def ort_model():
    """The backbone graph with its MatMuls quantised (host onnxruntime)."""
    path = os.path.join(OUT, "backbone.matmul_int8.onnx")
    if not os.path.exists(path):
        import onnx
        from forward_vs_onnxruntime import cut_at_backbone
        from onnxruntime.quantization import QuantType, quantize_dynamic
        fp32 = os.path.join(OUT, "backbone.onnx")
        onnx.save(cut_at_backbone(onnx.load(ONNX)), fp32)
        quantize_dynamic(fp32, path + ".tmp.onnx", weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        os.rename(path + ".tmp.onnx", path)
    return path


def fips_counts(cpu, exe, model, image):
    """Instructions of fips-run on one and on two images, and their difference."""
    runs = {}
    for n in (1, 2):
        runs[n], _ = qemu_counts.count(["qemu-aarch64", "-cpu", cpu],
                                       [exe, "--model", model, "--threads", "1", *[image] * n], OUT)
    return {"one_image": runs[1], "two_images": runs[2], "per_image": runs[2] - runs[1]}


def ort_counts(cpu, py, model):
    runs = {}
    for n in (0, 1, 2):
        runs[n], p = qemu_counts.count(["qemu-aarch64", "-cpu", cpu, "-L", py.sysroot],
                                       [py.python, "-c", ORT_CHILD, model, str(n)], OUT, env=py.env())
        assert f"ort-runs {n}" in p.stdout, p.stdout
    return {"zero": runs[0], "one": runs[1], "two": runs[2], "per_image": runs[1] - runs[0],
            "second": runs[2] - runs[1]}


def attribution(cpu, board, exe, model, image):
    per, totals = {}, {}
    for n in (1, 2):
        per[n], totals[n] = qemu_counts.by_symbol(
            cpu, exe, ["--model", model, "--threads", "1", *[image] * n], OUT, f"{board}_{n}img",
            symbols_from=os.path.join(ROOT, "build", board, "obj/fips-run.unstripped"))
    diff = {k: per[2].get(k, 0) - per[1].get(k, 0) for k in set(per[1]) | set(per[2])}
    return {"totals": totals, "per_function": {k: v for k, v in diff.items() if v},
            "groups": arm_attribution.group(diff)}


def versions(py):
    import onnxruntime
    qemu = subprocess.run(["qemu-aarch64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    # Uncommitted changes that can move the counts: the programs' sources and
    # the benchmark's code (an edited README or results file cannot).
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--",
                            "Sources", "Package.swift", "boards", "Benchmarks/*.py", "Benchmarks/qemu"],
                           capture_output=True, text=True).stdout.strip()
    return {"qemu": qemu, "aarch64": dict(kv.split("=") for kv in py.stamp),
            "host_onnxruntime": onnxruntime.__version__, "commit": head + ("+changes" if dirty else "")}


def g(n):
    return f"{n / 1e9:.3f} G"


def report(r, a):
    v = r["versions"]
    L = ["<!-- written by Benchmarks/arm_vs_onnxruntime.py -->",
         "# fips-run against onnxruntime on aarch64 (instructions under qemu)", "",
         "```", r["command"], "```", "",
         f"{v['qemu']}; aarch64 Python {v['aarch64']['python']} (Debian arm64), numpy {v['aarch64']['numpy']}, "
         f"onnxruntime {v['aarch64']['onnxruntime']} (PyPI aarch64 wheels); model quantised with the host's "
         f"onnxruntime {v['host_onnxruntime']}; fips-run from commit {v['commit']} "
         f"(./boards/build rpi4|rpi5 --release); image {os.path.relpath(r['image'], ROOT)}; run took "
         f"{r['seconds']:.0f} s.", "",
         "Instructions per image, one thread: fips-run = decode + preprocess + forward of one "
         "451x300 PNG (two-image run minus one-image run), DINOv2-S/14 int8 (`fips import --bits 8 --calib "
         "data/photos`); onnxruntime = forward only (one-inference process minus zero-inference process), "
         "`quantize_dynamic(QInt8, op_types_to_quantize=[\"MatMul\"])` of the same backbone graph.", "",
         "Instructions under qemu are a proxy for time on the board, not a measurement of it: README.md, "
         "\"On the boards\", says what the proxy flatters and what it penalises.", "",
         "| qemu -cpu | fips-run build | fips-run instructions | onnxruntime instructions | ratio |",
         "|---|---|---|---|---|"]
    for cpu, board in CPUS:
        c = r["cpus"][cpu]
        f, o = c["fips"]["dense"]["per_image"], c["ort"]["per_image"]
        L.append(f"| {cpu} | {board} | {g(f)} | {g(o)} | {f / o:.2f}x |")
    extra = [k for k in r["cpus"][CPUS[0][0]]["fips"] if k != "dense"]
    if extra:
        L += ["", "Extra models (fips-run only, per image, ratio against the onnxruntime row above):", "",
              "| model | path | " + " | ".join(f"{cpu}" for cpu, _ in CPUS) + " |",
              "|---|---|" + "---|" * len(CPUS)]
        for k in extra:
            cells = []
            for cpu, _ in CPUS:
                c = r["cpus"][cpu]
                f = c["fips"][k]["per_image"]
                cells.append(f"{g(f)} ({f / c['ort']['per_image']:.2f}x)")
            L.append(f"| {k} | {os.path.relpath(r['models'][k], ROOT)} | " + " | ".join(cells) + " |")
    L += ["", "Raw counts (instructions of the whole process):", "",
          "| qemu -cpu | model | fips-run 1 image | fips-run 2 images | ORT 0 inferences | ORT 1 | ORT 2 | "
          "ORT 2nd inference / 1st |", "|---|---|---|---|---|---|---|---|"]
    for cpu, _ in CPUS:
        c = r["cpus"][cpu]
        o = c["ort"]
        for k, fc in c["fips"].items():
            L.append(f"| {cpu} | {k} | {fc['one_image']:,} | {fc['two_images']:,} | {o['zero']:,} | {o['one']:,} | "
                     f"{o['two']:,} | {o['second'] / o['per_image']:.4f} |")
    L += ["", "## Where fips-run's instructions go", "",
          "Per image (the same two-image minus one-image difference), split by function with "
          "`Benchmarks/qemu/insn_by_symbol.c` and grouped by the name patterns in `Benchmarks/arm_attribution.py`; "
          "rpi4 build on cortex-a72, rpi5 build on cortex-a76.", "",
          "| part | " + " | ".join(cpu for cpu, _ in CPUS) + " |", "|---|" + "---|" * len(CPUS)]
    # Grouped now, from the stored per-function counts, so --report-only
    # follows arm_attribution.py's patterns as they are.
    grouped = {cpu: arm_attribution.group(r["cpus"][cpu]["attribution"]["per_function"]) for cpu, _ in CPUS}
    for i, (name, _) in enumerate(grouped[CPUS[0][0]]):
        cells = []
        for cpu, _ in CPUS:
            n, tot = grouped[cpu][i][1], sum(x for _, x in grouped[cpu])
            cells.append(f"{100 * n / tot:.1f}% ({g(n)})")
        L.append(f"| {name} | " + " | ".join(cells) + " |")
    L += ["", "The plugin's totals against insn_count.c's (same programs, same arguments):", ""]
    for cpu, _ in CPUS:
        c = r["cpus"][cpu]
        t, fc = c["attribution"]["totals"], c["fips"]["dense"]
        L.append(f"- {cpu}: " + ", ".join(
            f"{what} {t[n]:,} vs {fc[key]:,} ({t[n] - fc[key]:+,} instructions, {100 * (t[n] / fc[key] - 1):+.5f}%)"
            for what, n, key in [("one image", "1", "one_image"), ("two images", "2", "two_images")]))
    L += ["", f"Largest functions per image (top {a.top}), demangled:", ""]
    for cpu, _ in CPUS:
        per = r["cpus"][cpu]["attribution"]["per_function"]
        top = sorted(per.items(), key=lambda kv: -kv[1])[:a.top]
        tot = sum(per.values())
        names = arm_attribution.demangle([k for k, _ in top])
        L += [f"{cpu}:", "", "| instructions | share | group | function |", "|---|---|---|---|"]
        for (k, n), d in zip(top, names):
            L.append(f"| {n:,} | {100 * n / tot:.1f}% | {arm_attribution.group_of(k)} | `{d}` |")
        L.append("")
    return "\n".join(L).rstrip() + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-build", action="store_true", help="use build/rpi4 and build/rpi5 as they are")
    ap.add_argument("--extra-model", action="append", default=[], metavar="LABEL=PATH",
                    help="another .fips for fips-run only (e.g. a FiPS-compressed model); repeatable")
    ap.add_argument("--image", default=PHOTO)
    ap.add_argument("--top", type=int, default=12, help="functions listed per CPU")
    ap.add_argument("--out", default=os.path.join(ROOT, "Benchmarks/arm_results.md"))
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite --out from the last run's data/arm_bench/arm_results.json, running nothing")
    a = ap.parse_args()
    if a.report_only:
        with open(os.path.join(OUT, "arm_results.json")) as fh:
            r = json.load(fh)
        with open(a.out, "w") as fh:
            fh.write(report(r, a))
        return
    start = time.time()
    os.makedirs(OUT, exist_ok=True)

    models = {"dense": fips_model()}
    for spec in a.extra_model:
        label, _, path = spec.partition("=")
        if not label or not path or not os.path.exists(path):
            sys.exit(f"--extra-model {spec}: expected LABEL=PATH of an existing .fips")
        models[label] = os.path.abspath(path)
    ort_path = ort_model()
    if not a.no_build:
        for _, board in CPUS:
            sh([os.path.join(ROOT, "boards/build"), board, "--release"])
    py = aarch64_python.prepare()

    r = {"command": "python3 Benchmarks/arm_vs_onnxruntime.py " + shlex.join(sys.argv[1:]),
         "image": a.image, "models": models, "ort_model": ort_path, "versions": versions(py), "cpus": {}}
    for cpu, board in CPUS:
        exe = bench.board_binary(board, "fips-run")
        c = {"fips": {k: fips_counts(cpu, exe, m, a.image) for k, m in models.items()},
             "ort": ort_counts(cpu, py, ort_path),
             "attribution": attribution(cpu, board, exe, models["dense"], a.image)}
        r["cpus"][cpu] = c
        print(f"{cpu}: fips-run {g(c['fips']['dense']['per_image'])}, onnxruntime {g(c['ort']['per_image'])}", flush=True)
    r["seconds"] = time.time() - start
    # JSON keys are strings: the attribution totals are keyed "1" and "2".
    r = json.loads(json.dumps(r))
    with open(os.path.join(OUT, "arm_results.json"), "w") as fh:
        json.dump(r, fh, indent=1)
    text = report(r, a)
    with open(a.out, "w") as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
