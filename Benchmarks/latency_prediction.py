#!/usr/bin/env python3
"""Predicted against measured forward time of several DINOv2-S plans on the
x86-64 host: the check of FipsLatency's profile-based latency model.

    python3 Benchmarks/latency_prediction.py [--threads 1,2] [--runs 20] [--no-reprofile]
                                             [--profile profiles/x86-64.json] [--out Benchmarks/latency_prediction.md]

One command, start to end:
  1. builds the plans it lacks into data/profile_plans/ (kept between runs):
     dense 8-, 4- and mixed 8/3-bit quantisations and FiPS models with
     per-group ranks, 0-90% sparse projections and 8/4-bit weights (`fips
     compress --ranks --sparsity --bits/--block-bits`, `fips quantize --bits
     --block-bits`), each with a short calibration (16 Fashion-MNIST images,
     20 reconstruction steps) since only their running time matters here;
  2. builds the x86-64 board's fips-run and fips-profile (`./boards/build
     x86-64 --release`) and, unless --no-reprofile, re-measures the profile
     (`build/x86-64/fips-profile --name x86-64 -o profiles/x86-64.json
     --max-seconds 150`), so that profile and measurements see the same
     machine in the same state;
  3. for each thread count and plan: `fips latency --profile P --threads N
     --json` (predicted) and `fips-run --threads N --bench RUNS` on one photo
     (the median, measured);
  4. prints the table predicted / measured / ratio and writes it, with the
     machine's details, to --out.

Timings are only as good as the machine is quiet: on a shared machine rerun
it when it is idle. Exit status 1 when a plan is outside ±15%. Needs
scripts/setup.sh and `swift build -c release --product fips`.
"""
import argparse
import json
import os
import platform
import resource
import sys
import time

import bench_common as bench
from bench_common import FIPS, ROOT

FIPS_RUN = bench.board_binary("x86-64", "fips-run")
FIPS_PROFILE = bench.board_binary("x86-64", "fips-profile")
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
    return bench.run(args, fail=lambda p: f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}",
                     **kw)


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
    """fips-run --bench: the median forward time (wall), and the CPU time per
    forward from getrusage (a run of runs+1 forwards minus a run of one),
    which other jobs on a shared machine barely disturb: with one thread it
    is what the wall time would be on an idle machine."""
    def cpu_of(n):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = run([FIPS_RUN, "--model", path, "--threads", str(threads), "--bench", str(n), PHOTO])
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), p
    c1, _ = cpu_of(1)
    c2, p = cpu_of(runs + 1)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    # fips-run's forward pass alone (its "ms" adds decode and preprocessing).
    out["ms"], out["min_ms"], out["max_ms"] = out["forward_ms"], out["forward_min_ms"], out["forward_max_ms"]
    out["cpu_ms"] = (c2 - c1) / runs * 1000
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default=os.path.join(ROOT, "profiles/x86-64.json"))
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(ROOT, "Benchmarks/latency_prediction.md"))
    ap.add_argument("--skip-build", action="store_true", help="use the existing build/x86-64 binaries")
    ap.add_argument("--no-reprofile", action="store_true", help="use the existing --profile instead of measuring it again")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    for f in (FIPS, BASE, PHOTO):
        if not os.path.exists(f):
            sys.exit(f"{f} is missing (swift build -c release --product fips; scripts/setup.sh)")
    build_plans()
    if not a.skip_build:
        print("./boards/build x86-64 --release", flush=True)
        run([os.path.join(ROOT, "boards/build"), "x86-64", "--release"])
    if not a.no_reprofile:
        print(f"fips-profile --name x86-64 -o {os.path.relpath(a.profile, ROOT)} (about 2 minutes)", flush=True)
        run([FIPS_PROFILE, "--name", "x86-64", "-o", a.profile, "--max-seconds", "150", "--threads", str(max(threads))])
    profile = json.load(open(a.profile))
    rows = []
    for t in threads:
        for name, desc, _ in PLAN_LIST:
            path = os.path.join(PLANS, f"profile_{name}.fips")
            pred = predict(path, a.profile, t)
            meas = measure(path, t, a.runs)
            ratio = pred["total_ms"] / meas["ms"]
            rows.append((t, name, desc, os.path.getsize(path), pred["total_ms"], meas["ms"], meas["min_ms"], meas["max_ms"], ratio,
                         meas["cpu_ms"]))
            print(f"{t} thr  {name:18s} predicted {pred['total_ms']:8.2f} ms  measured {meas['ms']:8.2f} ms "
                  f"(min {meas['min_ms']:.2f}, max {meas['max_ms']:.2f})  ratio {ratio:.3f}  "
                  f"cpu/forward {meas['cpu_ms']:.2f} ms", flush=True)
    within = sum(1 for r in rows if abs(r[8] - 1) <= 0.15)
    cpu = profile["system"]["cpu_model"]
    load = os.getloadavg()
    lines = [
        "# Predicted vs measured latency (x86-64 host profile)",
        "",
        "`python3 Benchmarks/latency_prediction.py` "
        f"(--threads {a.threads} --runs {a.runs}{' --no-reprofile' if a.no_reprofile else ''}); predicted by `fips latency --profile "
        f"{os.path.relpath(a.profile, ROOT)} --threads N`, measured by the x86-64 board build of `fips-run --threads N --bench {a.runs}` "
        "(median of the forward passes on data/photos/chelsea.png). DINOv2-S/14, 257 tokens, batch 1. "
        "Plans built by the script (short calibration; only their running time matters).",
        "",
        f"Machine: {cpu}, {profile['system']['usable_cpus']} CPUs, kernel {profile['kernels']['used']}; "
        f"profile measured in {profile['elapsed_seconds']} s{' (truncated)' if profile.get('truncated') else ''}; "
        f"load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. "
        "The machine may have been shared with other jobs while this ran (a load average above the CPU count means it was): "
        "rerun on an idle machine for final figures.",
        "",
        "The last two columns are a cross-check for a busy machine: the CPU time per forward pass of the same fips-run "
        "(getrusage over `--bench RUNS+1` minus `--bench 1`). With one thread it is the forward time an idle machine "
        "would show, since time spent preempted by other jobs is not counted; with more threads it also counts the "
        "pool's spinning and is not comparable.",
        "",
        "| threads | plan | what | bytes | predicted ms | measured ms, median (min–max) | predicted / measured | CPU ms per forward | predicted / CPU |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t, name, desc, size, p, m, lo, hi, r, c in rows:
        flag = "" if abs(r - 1) <= 0.15 else " **outside ±15%**"
        lines.append(f"| {t} | {name} | {desc} | {size:,} | {p:.2f} | {m:.2f} ({lo:.2f}–{hi:.2f}) | {r:.3f}{flag} | {c:.2f} | "
                     f"{p / c:.3f}{'' if t == 1 else ' (n/a)'} |")
    worst = max(rows, key=lambda r: abs(r[8] - 1))
    one = [r for r in rows if r[0] == 1]
    cpu_within = sum(1 for r in one if abs(r[4] / r[9] - 1) <= 0.15)
    lines += ["", f"{within} of {len(rows)} (plan, threads) pairs within ±15% of the measured median "
              f"(worst: {worst[1]} at {worst[0]} thread(s), ratio {worst[8]:.3f})"
              + (f"; with one thread, {cpu_within} of {len(one)} within ±15% of the CPU time per forward." if one else "."), ""]
    text = "\n".join(lines)
    print()
    print(text)
    with open(a.out, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(a.out, ROOT)}")
    sys.exit(0 if within == len(rows) else 1)


if __name__ == "__main__":
    main()
