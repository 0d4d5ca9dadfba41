#!/usr/bin/env python3
"""Does a planned model stay inside its memory budget on the runtime?

For each budget, fips-plan plans DINOv2-S/14 (with the Fashion-MNIST head of
Benchmarks/compression_table.py) for the x86-64 board at 2 threads, compresses
and writes it (reduced protocol: --steps 30, 16 calibration images), then
fips-run --verbose --threads 2 classifies one photo and prints the arena and
its peak RSS (VmHWM). The process baseline (program, Swift runtime, libraries,
decoding that photo) is fips-run's peak RSS on a tiny random ViT
(fips-plan --write-random) minus that model's own artifact, arena and buffers.
The check: peak RSS - baseline <= budget, and the arena fips-run reports equals
the planned one.

    python3 Benchmarks/plan_budget.py [--budgets 19.5MB,22MB,26MB,32MB,40MB,50MB]

Writes Benchmarks/plan_budget.md.
"""
import argparse
import json
import os
import re
import sys

import bench_common as bench
from bench_common import ROOT

PLAN = bench.FIPS_PLAN
RUN = bench.FIPS_RUN
OUT = os.path.join(ROOT, "data/plan_bench")
HEAD = os.path.join(ROOT, "data/bench_compression/original_head.fips")
PHOTO = os.path.join(ROOT, "data/photos/chelsea.png")


def run(cmd):
    p = bench.run(cmd, echo=bench.shown(cmd), fail=lambda p: f"failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout + p.stderr


def fips_run(model):
    out = run([RUN, "--model", model, "--threads", "2", "--verbose", PHOTO])
    arena = int(re.search(r"activation arena (\d+) bytes", out).group(1))
    rss = int(re.search(r"peak RSS (\d+) bytes", out).group(1))
    return arena, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", default="19.5MB,22MB,26MB,32MB,40MB,50MB")
    ap.add_argument("--steps", default="30")
    ap.add_argument("--calib-images", default="16")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if not os.path.exists(HEAD):
        sys.exit(f"{HEAD} is missing: run Benchmarks/compression_table.py (or fips head) first")

    tiny = os.path.join(OUT, "tiny.fips")
    run([PLAN, "--write-random", tiny])
    t_arena, t_rss = fips_run(tiny)
    # the tiny model's own memory: artifact + arena + run buffers (input 3*32*32, features 17*64 floats)
    t_io = 4 * (3 * 32 * 32 + 17 * 64 + 1)
    baseline = t_rss - (os.path.getsize(tiny) + t_arena + t_io)
    print(f"baseline: peak RSS {t_rss} - tiny model {os.path.getsize(tiny) + t_arena + t_io} = {baseline} bytes", flush=True)

    rows = ["| budget | plan (per group: mlp rank/sparsity, bits mlp/attn) | planned memory | artifact file | arena planned / fips-run | peak RSS | RSS - baseline | within budget |",
            "|---|---|---|---|---|---|---|---|"]
    ok = True
    for b in a.budgets.split(","):
        path = os.path.join(OUT, f"budget_{b}.fips")
        # --camera none: fips-run serves these plans, and it captures from no camera (fipsd's
        # capture buffers are checked by Tests/Integration/check_plan_memory.py).
        run([PLAN, "--model", HEAD, "--calib", "fashion-mnist", "--board", "x86-64", "--threads", "2", "--budget", b,
             "--calib-images", a.calib_images, "--steps", a.steps, "--camera", "none", "-o", path])
        plan = json.load(open(path[:-5] + ".plan.json"))
        t = plan["totals"]
        arena, rss = fips_run(path)
        net = rss - baseline
        budget = plan["budget"]["memory_bytes"]
        within = net <= budget and arena == t["arena_bytes"]
        ok &= within
        desc = "; ".join(f"{g['mlp']}{'' if g['mlp'] == 'dense' else ' r' + str(g['rank']) + '/s' + str(g['sparsity'])} {g['mlp_bits']}/{g['attention_bits']}"
                         for g in plan["groups"])
        rows.append(f"| {b} ({budget}) | {desc} | {t['memory_bytes']} | {os.path.getsize(path)} | {t['arena_bytes']} / {arena} | "
                    f"{rss} | {net} | {'yes' if within else 'NO'} |")
        print(rows[-1], flush=True)
    text = ("<!-- written by Benchmarks/plan_budget.py -->\n"
            f"DINOv2-S/14 + Fashion-MNIST head, planned for boards/x86-64.board at 2 threads, frame 640x480 counted; "
            f"fips-run --threads 2 --verbose on data/photos/chelsea.png. Process baseline {baseline} bytes "
            f"(fips-run's peak RSS {t_rss} on a tiny random ViT minus that model's artifact, arena and buffers).\n\n"
            + "\n".join(rows) + "\n")
    open(os.path.join(ROOT, "Benchmarks/plan_budget.md"), "w").write(text)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
