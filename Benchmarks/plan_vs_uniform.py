#!/usr/bin/env python3
"""At each memory budget, the plan's Fashion-MNIST top-1 against the best
uniform setting that fits (the same rank, sparsity and bits in every group).

Model: DINOv2-S/14 with the Fashion-MNIST head of Benchmarks/compression_table.py
(trained on 2,000 training images, 200 per class; fp32 top-1 81.05%). Every
model is built by fips-plan with the same reduced protocol — 32 Fashion-MNIST
calibration images, 16 tokens each, --steps 100 reconstruction steps per FiPS
group, GPTQ (and the GPTQ error proxy), the original head kept — priced with the
measured host profile profiles/x86-64.json at 2 threads: once as the optimised
plan, and once per uniform baseline (fips-plan --uniform K: the K-th best
uniform setting by the same error proxy). fips-plan lists every uniform
setting that fits (plan.json "uniform_settings_that_fit"); the script builds
all of them when there are at most --uniform-count, else the top
--uniform-count by the proxy, and says which.

Scored like the compression issue, on the first 200 test images per class
(2,000), on the integer runtime, in one pass of `fips eval --reference
original --also-head REFIT`:
- top-1 with the original head (the artifact's own, q8);
- top-1 with a refitted head: `fips head` trained on the first 200 training
  images per class (2,000) on the CLS features of the artifact's integer
  runtime (what the board computes), stored q8 in the packed artifact,
  scored on the integer runtime's CLS features;
- mean CLS cosine to the fp32 model.

    python3 Benchmarks/plan_vs_uniform.py [--budgets 22MB,26MB] [--uniform-count 3] [--table-only]

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
PROFILE = "profiles/x86-64.json"
CACHE = os.path.join(OUT, "plan_reference.cache")
PROTOCOL = "gptq-proxy/profile-x86-64/refit-runtime"


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
    ap.add_argument("--budgets", default="22MB,26MB")
    ap.add_argument("--uniform-count", type=int, default=3)
    ap.add_argument("--steps", default="100")
    ap.add_argument("--calib-images", default="32")
    ap.add_argument("--table-only", action="store_true", help="build nothing; write the table from the results so far")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    results = json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}

    def save():
        json.dump(results, open(RESULTS + ".tmp", "w"), indent=1, sort_keys=True)
        os.replace(RESULTS + ".tmp", RESULTS)

    def key(budget, mode):
        return f"{budget}/{mode}/steps{a.steps}/calib{a.calib_images}/{PROTOCOL}"

    def build_and_score(budget, mode):
        k = key(budget, mode)
        if k in results:
            return results[k]
        path = os.path.join(OUT, f"plan_vs_{budget}_{mode}.fips")
        refit = path[:-5] + ".refit.fips"
        t0 = time.time()
        cmd = [PLAN, "--model", HEAD, "--calib", "fashion-mnist", "--profile", PROFILE, "--threads", "2", "--budget", budget,
               "--calib-images", a.calib_images, "--steps", a.steps, "-o", path]
        if mode != "plan":
            cmd += ["--uniform", mode[len("uniform"):]]
        out, err = run(cmd)
        if out is None:
            print(err, flush=True)
            results[k] = {"budget": budget, "mode": mode, "error": err.strip().splitlines()[-1]}
            save()
            return results[k]
        plan = json.load(open(path[:-5] + ".plan.json"))
        build_s = time.time() - t0
        hd, herr = run([FIPS, "head", "--model", path, "--fashion-mnist", "--per-class", "200", "--threads", "2", "-o", refit])
        if hd is None:
            raise SystemExit(herr)
        ev, everr = run([FIPS, "eval", "--model", path, "--fashion-mnist", "--per-class", "200", "--threads", "2",
                         "--reference", HEAD, "--reference-cache", CACHE, "--also-head", refit, "--json"])
        if ev is None:
            raise SystemExit(everr)
        r = json.loads(ev.strip().splitlines()[-1])
        results[k] = {"budget": budget, "mode": mode, "top1": r["top1"], "top1_refit": r["extra_top1"][0],
                      "cls_cosine": r["mean_cls_cosine"], "plan": describe(plan),
                      "memory": plan["totals"]["memory_bytes"], "budget_bytes": plan["budget"]["memory_bytes"],
                      "artifact": os.path.getsize(path), "proxy": plan["totals"]["error"],
                      "predicted_ms": plan["totals"]["predicted_ms"], "build_s": build_s,
                      "uniform_fit": plan.get("uniform_settings_that_fit", []),
                      "refit_artifact": os.path.getsize(refit)}
        save()
        os.remove(refit)
        print(f"{k}: top-1 {100 * r['top1']:.2f}% (refit {100 * r['extra_top1'][0]:.2f}%), CLS cosine "
              f"{r['mean_cls_cosine']:.4f}  {describe(plan)}", flush=True)
        return results[k]

    budgets = a.budgets.split(",")
    for budget in ([] if a.table_only else budgets):
        p = build_and_score(budget, "plan")
        fit = p.get("uniform_fit", [])
        n = min(len(fit), a.uniform_count)
        for i in range(1, n + 1):
            build_and_score(budget, f"uniform{i}")

    rows = ["| budget | model | per group (mlp, bits mlp/attn) | memory (artifact + arena + buffers + frame) | artifact | error proxy "
            "| predicted ms (x86-64 profile, 2 threads) | top-1, original head | top-1, refitted head | mean CLS cosine |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    verdicts, coverage = [], []
    for budget in budgets:
        keys = [k for k in results if k.startswith(f"{budget}/") and k.endswith(f"/steps{a.steps}/calib{a.calib_images}/{PROTOCOL}")]
        keys.sort(key=lambda k: (results[k]["mode"] != "plan", int(results[k]["mode"][7:] or 0) if results[k]["mode"] != "plan" else 0))
        for k in keys:
            v = results[k]
            if "error" in v:
                rows.append(f"| {budget} | {v['mode']} | — | — | — | — | — | {v['error']} | — | — |")
                continue
            rows.append(f"| {budget} | {v['mode']} | {v['plan']} | {v['memory']} / {v['budget_bytes']} | {v['artifact']} | "
                        f"{v['proxy']:.4f} | {v['predicted_ms']:.1f} | {100 * v['top1']:.2f}% | {100 * v['top1_refit']:.2f}% | "
                        f"{v['cls_cosine']:.4f} |")
        plan = [results[k] for k in keys if results[k]["mode"] == "plan" and "top1" in results[k]]
        uni = [results[k] for k in keys if results[k]["mode"] != "plan" and "top1" in results[k]]
        if plan:
            fit = plan[0].get("uniform_fit", [])
            listed = ", ".join(f"#{u['k']} {u['setting']} ({u['error']:.3g})" for u in fit)
            coverage.append(f"- {budget}: {len(fit)} uniform settings fit; evaluated {len(uni)} "
                            f"({'all of them' if len(uni) >= len(fit) else f'the top {len(uni)} by the error proxy'}). "
                            f"All that fit, best proxy first: {listed}")
        if plan and uni:
            for field, name in (("top1", "original head"), ("top1_refit", "refitted head"), ("cls_cosine", "CLS cosine")):
                best = max(uni, key=lambda v: v[field])
                if field == "cls_cosine":
                    d = plan[0][field] - best[field]
                    verdicts.append(f"- {budget}, {name}: plan {plan[0][field]:.4f} vs best uniform ({best['mode']}) "
                                    f"{best[field]:.4f}: {d:+.4f} ({'plan ≥ uniform' if d >= 0 else 'plan BELOW uniform'})")
                    continue
                d = 100 * (plan[0][field] - best[field])
                verdicts.append(f"- {budget}, {name}: plan {100 * plan[0][field]:.2f}% vs best uniform ({best['mode']}) "
                                f"{100 * best[field]:.2f}%: {d:+.2f} pt ({'plan ≥ uniform' if d >= 0 else 'plan BELOW uniform'})")
    text = ("<!-- written by Benchmarks/plan_vs_uniform.py -->\n"
            "# fips-plan vs the best uniform setting\n\n"
            f"DINOv2-S/14 + Fashion-MNIST head (fp32 top-1 81.05%), reduced protocol: {a.calib_images} calibration images, "
            f"{a.steps} reconstruction steps per FiPS group, GPTQ (error proxy with GPTQ too), latency priced by profiles/x86-64.json "
            "at 2 threads, integer runtime; 2,000 test images (200 per class). Original head: the artifact's own (q8). "
            "Refitted head: fips head on 2,000 training images (200 per class), trained on the artifact's integer-runtime features. "
            "CLS cosine: mean cosine of the final CLS token to the fp32 model's. "
            "Uniform = the same choice in every group, ranked by the planner's error proxy; uniformK is the K-th.\n\n"
            + "\n".join(rows) + "\n\nUniform settings:\n\n" + "\n".join(coverage) + "\n\nVerdicts:\n\n" + "\n".join(verdicts) + "\n")
    open(os.path.join(ROOT, "Benchmarks/plan_results.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
