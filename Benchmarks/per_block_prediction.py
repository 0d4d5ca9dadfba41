#!/usr/bin/env python3
"""Where a plan's time goes, block by block: `fips-run --bench N --per-block` (measured p50/p90/p99 of
each block, the embedding and the head, and the cold start) beside `fips latency --json` (the latency
model's prediction for the same blocks, and its uncertainty), for three of latency_prediction.py's plans.

    python3 Benchmarks/per_block_prediction.py [--plans q8,mixed-8-3,fips-mixed] [--threads 1,2] [--runs 30]
                                               [--profile profiles/x86-64.json] [--out Benchmarks/per_block_prediction.md]

Builds the plans it lacks as latency_prediction.py does (data/profile_plans/) and measures with the
x86-64 board build of fips-run (`./boards/build x86-64 --release` first). On a board, the same
`fips-run --bench N --per-block` runs there; its prediction is `fips latency --profile` with that
board's profile. Timings are only as good as the machine is quiet: the load average is printed.
"""
import argparse
import json
import os
import sys

import latency_prediction as lp
from bench_common import ROOT


def measure_blocks(path, threads, runs):
    p = lp.run([lp.FIPS_RUN, "--model", path, "--threads", str(threads), "--bench", str(runs), "--per-block", lp.PHOTO])
    lines = [json.loads(l) for l in p.stdout.strip().splitlines() if l.startswith("{")]
    total = next(l for l in lines if "block" not in l)
    return total, {l["block"]: l for l in lines if "block" in l}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plans", default="q8,mixed-8-3,fips-mixed")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated: one section per plan and count")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--profile", default=os.path.join(ROOT, "profiles/x86-64.json"))
    ap.add_argument("--out", default=os.path.join(ROOT, "Benchmarks/per_block_prediction.md"))
    a = ap.parse_args()
    names = a.plans.split(",")
    thread_counts = [int(t) for t in a.threads.split(",")]
    known = {n: d for n, d, _ in lp.PLAN_LIST}
    if any(n not in known for n in names):
        sys.exit(f"unknown plan; known: {', '.join(known)}")
    lp.PLAN_LIST = [p for p in lp.PLAN_LIST if p[0] in names]   # build only these
    lp.build_plans()
    if not os.path.exists(lp.FIPS_RUN):
        sys.exit(f"{lp.FIPS_RUN} is missing (./boards/build x86-64 --release)")
    out = ["# Per-block time: measured beside predicted (x86-64 host profile)", "",
           f"`python3 Benchmarks/per_block_prediction.py --plans {a.plans} --threads {a.threads} --runs {a.runs}`: "
           f"measured by the x86-64 board build of `fips-run --threads T --bench {a.runs} --per-block` on "
           f"data/photos/chelsea.png, predicted by `fips latency --profile {os.path.relpath(a.profile, ROOT)} "
           f"--threads T --json`, T in {{{a.threads}}}. DINOv2-S/14, batch 1. `embed` is measured as the patch embedding alone; "
           "the prediction's fixed part (embedding, final LayerNorm, head) is shown against embed + head.", ""]
    for name, threads in ((n, t) for n in names for t in thread_counts):
        path = os.path.join(lp.PLANS, f"profile_{name}.fips")
        pred = lp.predict(path, a.profile, threads)
        total, blocks = measure_blocks(path, threads, a.runs)
        unc = pred.get("uncertainty")
        out += [f"## {name}, {threads} thread{'s' if threads > 1 else ''}: {known[name]}", "",
                f"total: predicted {pred['total_ms']:.2f} ms"
                + (f" ± {pred['uncertainty_ms']:.2f} ({pred['uncertainty_basis']})" if unc is not None else " (uncertainty unknown)")
                + f"; measured median {total['forward_ms']:.2f} ms (min {total['forward_min_ms']:.2f}, max {total['forward_max_ms']:.2f}), "
                f"ratio {pred['total_ms'] / total['forward_ms']:.3f}"
                + ("" if unc is None else f", {'within' if abs(pred['total_ms'] - total['forward_ms']) <= pred['uncertainty_ms'] else '**outside**'} "
                   "the uncertainty")
                + f"; cold start (map + first inference) {total['cold_start_ms']:.2f} ms", "",
                "| block | predicted ms | measured p50 | p90 | p99 | predicted / p50 |", "|---|---:|---:|---:|---:|---:|"]
        fixed_meas = blocks["embed"]["p50_ms"] + blocks.get("head", {"p50_ms": 0})["p50_ms"]
        out.append(f"| fixed (embed + head) | {pred['fixed_ms']:.2f} | {fixed_meas:.2f} | — | — | {pred['fixed_ms'] / fixed_meas:.3f} |")
        for i, ms in enumerate(pred["block_ms"]):
            b = blocks[str(i)]
            out.append(f"| {i} | {ms:.2f} | {b['p50_ms']:.2f} | {b['p90_ms']:.2f} | {b['p99_ms']:.2f} | {ms / b['p50_ms']:.3f} |")
        out.append("")
        print("\n".join(out[-len(pred["block_ms"]) - 6:]), flush=True)
    load = os.getloadavg()
    out += [f"Load average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} CPUs "
            "(above the CPU count, other jobs shared the machine: rerun when it is idle).", ""]
    with open(a.out, "w") as f:
        f.write("\n".join(out))
    print(f"wrote {os.path.relpath(a.out, ROOT)}")


if __name__ == "__main__":
    main()
