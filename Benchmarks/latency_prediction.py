#!/usr/bin/env python3
"""Predicted against measured forward time of several DINOv2-S plans on the
x86-64 host: the check of FipsLatency's profile-based latency model.

    python3 Benchmarks/latency_prediction.py [--profile profiles/x86-64.json] [--threads 2]
                                             [--runs 20] [--out Benchmarks/latency_prediction.md]

One command, start to end:
  1. builds the plans it lacks into data/profile_plans/ (kept between runs):
     dense 8-, 4- and mixed 8/3-bit quantisations and FiPS models with
     per-group ranks, 0-90% sparse projections and 8/4-bit weights (`fips
     compress --ranks --sparsity --bits/--block-bits`, `fips quantize --bits
     --block-bits`), each with a short calibration (16 Fashion-MNIST images,
     20 reconstruction steps) since only their running time matters here;
  2. builds the x86-64 board's fips-run (`./boards/build x86-64 --release`);
  3. for each plan: `fips latency --profile P --threads N --json` (predicted)
     and `fips-run --threads N --bench RUNS` on one photo (the median,
     measured), interleaved plan by plan;
  4. prints the table predicted / measured / ratio and writes it, with the
     machine's details, to --out.

Timings are only as good as the machine is quiet: on a shared machine rerun
it (and regenerate the profile with `build/x86-64/fips-profile --name x86-64
-o profiles/x86-64.json`) when it is idle. Needs scripts/setup.sh and
`swift build -c release --product fips`.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIPS = os.path.join(ROOT, ".build/release/fips")
FIPS_RUN = os.path.join(ROOT, "build/x86-64/fips-run")
PLANS = os.path.join(ROOT, "data/profile_plans")
BASE = os.path.join(ROOT, "data/dinov2_s.fips")
PHOTO = os.path.join(ROOT, "data/photos/chelsea.png")
CAL = ["--calib", "fashion-mnist", "--calib-images", "16"]
STEPS = ["--steps", "20", "--tokens-per-image", "32"]

# name -> (description, command building it; {out} is the artifact path)
PLAN_LIST = [
    ("q8", "dense, every linear map 8-bit",
     ["quantize", "--model", BASE, *CAL, "--bits", "8", "-o", "{out}"]),
    ("q4", "dense, every linear map 4-bit (q4g32)",
     ["quantize", "--model", BASE, *CAL, "--bits", "4", "-o", "{out}"]),
    ("mixed-8-3", "dense, blocks 0-5 8-bit, 6-11 3-bit (q3g32)",
     ["quantize", "--model", BASE, *CAL, "--block-bits", "0-5:8,6-11:3", "-o", "{out}"]),
    ("fips-r256-s50-q8", "FiPS ranks 256,256,384, 50% sparse V, 8-bit (q8-sparse V)",
     ["compress", "--model", BASE, *CAL, *STEPS, "--ranks", "256,256,384", "--sparsity", "0.5", "--bits", "8", "-o", "{out}"]),
    ("fips-r192-s75-q8", "FiPS ranks 192,256,320, 75% sparse V, 8-bit",
     ["compress", "--model", BASE, *CAL, *STEPS, "--ranks", "192,256,320", "--sparsity", "0.75", "--bits", "8", "-o", "{out}"]),
    ("fips-r384-q4", "FiPS ranks 384,384,384, dense V, 4-bit",
     ["compress", "--model", BASE, *CAL, *STEPS, "--ranks", "384,384,384", "--bits", "4", "-o", "{out}"]),
    ("fips-mixed", "FiPS ranks 128,256,512, 90% sparse V, blocks 0-3 8-bit, 4-7 4-bit, 8-11 3-bit",
     ["compress", "--model", BASE, *CAL, *STEPS, "--ranks", "128,256,512", "--sparsity", "0.9",
      "--block-bits", "0-3:8,4-7:4,8-11:3", "-o", "{out}"]),
]


def run(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def build_plans():
    os.makedirs(PLANS, exist_ok=True)
    for name, _, cmd in PLAN_LIST:
        out = os.path.join(PLANS, f"profile_{name}.fips")
        if os.path.exists(out) and os.path.getmtime(out) > os.path.getmtime(BASE):
            continue
        args = [FIPS] + [out if a == "{out}" else a for a in cmd]
        print(f"building plan {name}: fips {' '.join(cmd[:1])} ...", flush=True)
        t = time.time()
        run(args)
        print(f"  {time.time() - t:.0f} s", flush=True)


def predict(path, profile, threads):
    p = run([FIPS, "latency", "--profile", profile, "--threads", str(threads), "--json", path])
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(path, threads, runs):
    p = run([FIPS_RUN, "--model", path, "--threads", str(threads), "--bench", str(runs), PHOTO])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default=os.path.join(ROOT, "profiles/x86-64.json"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(ROOT, "Benchmarks/latency_prediction.md"))
    ap.add_argument("--skip-build", action="store_true", help="use the existing build/x86-64/fips-run")
    a = ap.parse_args()
    for f in (FIPS, BASE, PHOTO, a.profile):
        if not os.path.exists(f):
            sys.exit(f"{f} is missing (swift build -c release --product fips; scripts/setup.sh; fips-profile)")
    build_plans()
    if not a.skip_build:
        print("./boards/build x86-64 --release", flush=True)
        run([os.path.join(ROOT, "boards/build"), "x86-64", "--release"])
    profile = json.load(open(a.profile))
    rows = []
    for name, desc, _ in PLAN_LIST:
        path = os.path.join(PLANS, f"profile_{name}.fips")
        pred = predict(path, a.profile, a.threads)
        meas = measure(path, a.threads, a.runs)
        ratio = pred["total_ms"] / meas["ms"]
        rows.append((name, desc, os.path.getsize(path), pred["total_ms"], meas["ms"], meas["min_ms"], meas["max_ms"], ratio))
        print(f"{name:18s} predicted {pred['total_ms']:8.2f} ms  measured {meas['ms']:8.2f} ms "
              f"(min {meas['min_ms']:.2f}, max {meas['max_ms']:.2f})  ratio {ratio:.3f}", flush=True)
    within = sum(1 for r in rows if abs(r[7] - 1) <= 0.15)
    cpu = profile["system"]["cpu_model"]
    lines = [
        "# Predicted vs measured latency (x86-64 host profile)",
        "",
        "`python3 Benchmarks/latency_prediction.py` "
        f"(--threads {a.threads} --runs {a.runs}); predicted by `fips latency --profile "
        f"{os.path.relpath(a.profile, ROOT)}`, measured by the x86-64 board build of `fips-run --bench {a.runs}` "
        "(median of the forward passes on data/photos/chelsea.png). DINOv2-S/14, 257 tokens, batch 1.",
        "",
        f"Machine: {cpu}, {profile['system']['usable_cpus']} CPUs, kernel {profile['kernels']['used']}; "
        f"profile made in {profile['elapsed_seconds']} s{' (truncated)' if profile.get('truncated') else ''}. "
        "The machine may have been shared with other jobs while this ran: rerun on an idle machine for final figures.",
        "",
        "| plan | what | bytes | predicted ms | measured ms (min–max) | predicted / measured |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, desc, size, p, m, lo, hi, r in rows:
        flag = "" if abs(r - 1) <= 0.15 else " **outside ±15%**"
        lines.append(f"| {name} | {desc} | {size:,} | {p:.2f} | {m:.2f} ({lo:.2f}–{hi:.2f}) | {r:.3f}{flag} |")
    lines += ["", f"{within} of {len(rows)} plans within ±15% "
              f"(worst ratio {max(rows, key=lambda r: abs(r[7] - 1))[7]:.3f}).", ""]
    text = "\n".join(lines)
    print()
    print(text)
    with open(a.out, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(a.out, ROOT)}")
    sys.exit(0 if within == len(rows) else 1)


if __name__ == "__main__":
    main()
