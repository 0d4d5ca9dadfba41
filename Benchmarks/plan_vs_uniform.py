#!/usr/bin/env python3
"""At one memory budget, the plan's Fashion-MNIST top-1 against the best
uniform setting that fits (the same rank, sparsity and bits in every group).

Model: DINOv2-S/14 with the Fashion-MNIST head of Benchmarks/compression_table.py
(trained on 2,000 training images, 200 per class; fp32 top-1 81.05%). Every
model is built by fips-plan with the same reduced protocol — 32 Fashion-MNIST
calibration images, 16 tokens each, --steps 100 reconstruction steps per FiPS
group, GPTQ, the original head kept (no refit) — on boards/x86-64.board at 2
threads: once as the optimised plan, and once per uniform baseline
(fips-plan --uniform K: the K-th best uniform setting by the same error proxy;
the top --uniform-count of them are built and the best top-1 is the baseline).
Top-1 is `fips eval --fashion-mnist --per-class 200` (the first 200 test
images per class, 2,000 images) on the integer runtime.

    python3 Benchmarks/plan_vs_uniform.py [--budgets 22MB] [--uniform-count 3]

Resumable (data/plan_bench/uniform_results.json). Writes Benchmarks/plan_results.md.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAN = os.path.join(ROOT, ".build/release/fips-plan")
FIPS = os.path.join(ROOT, ".build/release/fips")
OUT = os.path.join(ROOT, "data/plan_bench")
RESULTS = os.path.join(OUT, "uniform_results.json")
HEAD = os.path.join(ROOT, "data/bench_compression/original_head.fips")


def run(cmd):
    print("$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stdout + p.stderr
    return p.stdout, p.stderr


def describe(plan):
    return "; ".join(f"{g['mlp']}{'' if g['mlp'] == 'dense' else ' r' + str(g['rank']) + (' s' + str(g['sparsity']) if g['sparsity'] else '')}"
                     f" {g['mlp_bits']}/{g['attention_bits']}b" for g in plan["groups"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", default="22MB")
    ap.add_argument("--uniform-count", type=int, default=3)
    ap.add_argument("--steps", default="100")
    ap.add_argument("--calib-images", default="32")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    results = json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}

    def save():
        json.dump(results, open(RESULTS + ".tmp", "w"), indent=1, sort_keys=True)
        os.replace(RESULTS + ".tmp", RESULTS)

    for budget in a.budgets.split(","):
        for mode in ["plan"] + [f"uniform{k}" for k in range(1, a.uniform_count + 1)]:
            key = f"{budget}/{mode}/steps{a.steps}/calib{a.calib_images}"
            if key in results:
                continue
            path = os.path.join(OUT, f"vs_{budget}_{mode}.fips")
            t0 = time.time()
            cmd = [PLAN, "--model", HEAD, "--calib", "fashion-mnist", "--board", "x86-64", "--threads", "2", "--budget", budget,
                   "--calib-images", a.calib_images, "--steps", a.steps, "-o", path]
            if mode != "plan":
                cmd += ["--uniform", mode[len("uniform"):]]
            out, err = run(cmd)
            if out is None:
                print(err, flush=True)
                results[key] = {"budget": budget, "mode": mode, "error": err.strip().splitlines()[-1]}
                save()
                continue
            plan = json.load(open(path[:-5] + ".plan.json"))
            build_s = time.time() - t0
            ev, _ = run([FIPS, "eval", "--model", path, "--fashion-mnist", "--per-class", "200", "--threads", "2", "--json"])
            r = json.loads(ev.strip().splitlines()[-1])
            results[key] = {"budget": budget, "mode": mode, "top1": r["top1"], "plan": describe(plan),
                            "memory": plan["totals"]["memory_bytes"], "budget_bytes": plan["budget"]["memory_bytes"],
                            "artifact": os.path.getsize(path), "proxy": plan["totals"]["error"],
                            "predicted_ms": plan["totals"]["predicted_ms"], "build_s": build_s}
            save()
            print(f"{key}: top-1 {100 * r['top1']:.2f}%  {describe(plan)}", flush=True)

    rows = ["| budget | model | per group (mlp, bits mlp/attn) | memory (artifact + arena + buffers + frame) | artifact | error proxy | predicted ms (x86-64 roofline) | Fashion-MNIST top-1 |",
            "|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for budget in a.budgets.split(","):
        keys = [k for k in results if k.startswith(f"{budget}/") and k.endswith(f"/steps{a.steps}/calib{a.calib_images}")]
        keys.sort(key=lambda k: (results[k]["mode"] != "plan", results[k]["mode"]))
        for k in keys:
            v = results[k]
            if "error" in v:
                rows.append(f"| {budget} | {v['mode']} | — | — | — | — | — | {v['error']} |")
                continue
            rows.append(f"| {budget} | {v['mode']} | {v['plan']} | {v['memory']} / {v['budget_bytes']} | {v['artifact']} | "
                        f"{v['proxy']:.4f} | {v['predicted_ms']:.1f} | {100 * v['top1']:.2f}% |")
        plan = [results[k] for k in keys if results[k]["mode"] == "plan" and "top1" in results[k]]
        uni = [results[k] for k in keys if results[k]["mode"] != "plan" and "top1" in results[k]]
        if plan and uni:
            best = max(uni, key=lambda v: v["top1"])
            d = 100 * (plan[0]["top1"] - best["top1"])
            verdicts.append(f"- {budget}: plan {100 * plan[0]['top1']:.2f}% vs best uniform ({best['mode']}) "
                            f"{100 * best['top1']:.2f}%: {d:+.2f} pt ({'plan ≥ uniform' if d >= 0 else 'plan BELOW uniform'})")
    text = ("<!-- written by Benchmarks/plan_vs_uniform.py -->\n"
            "# fips-plan vs the best uniform setting\n\n"
            f"DINOv2-S/14 + Fashion-MNIST head (fp32 top-1 81.05%), reduced protocol: {a.calib_images} calibration images, "
            f"{a.steps} reconstruction steps per FiPS group, GPTQ, original head, integer runtime; "
            "uniform = the same choice in every group, the top candidates by the planner's error proxy that fit.\n\n"
            + "\n".join(rows) + "\n\n" + "\n".join(verdicts) + "\n")
    open(os.path.join(ROOT, "Benchmarks/plan_results.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
