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

Scored like the compression issue, on the integer runtime, on the first
--test-per-class test images of each class (default 1000: all 10,000), in one
pass of `fips eval --reference original --also-head REFIT1 ... REFITn`:
- top-1 with the original head (the artifact's own, q8);
- top-1 with a refitted head: `fips head` trained on 200 training images per
  class (2,000) on the CLS features of the artifact's integer runtime (what the
  board computes), stored q8 in the packed artifact, scored on the integer
  runtime's CLS features. A head fitted on 2,000 images moves by about half a
  point with the images it is fitted on (more than the difference between two
  good models), so it is fitted --head-subsets times, on disjoint training
  subsets (images 0-199, 1000-1199, 2000-2199, ... of each class;
  `fips head --skip-per-class`), and the comparison is the paired mean over
  the subsets with its standard error;
- mean CLS cosine to the fp32 model.
The fp32 model itself is scored the same way (row "fp32": its own head, and
heads refitted on its fp32 features on the same subsets), as the ceiling that
fidelity to the original features can reach.

    python3 Benchmarks/plan_vs_uniform.py [--budgets 22MB,26MB] [--uniform-count 3] [--head-subsets 5]
        [--test-per-class 1000] [--reuse-artifacts] [--table-only]

Resumable (data/plan_bench/uniform_results.json). Writes Benchmarks/plan_results.md.
"""
import argparse
import json
import os
import sys
import time

import bench_common as bench
from bench_common import FIPS, ROOT

PLAN = bench.FIPS_PLAN
OUT = os.path.join(ROOT, "data/plan_bench")
RESULTS = os.path.join(OUT, "uniform_results.json")
HEAD = os.path.join(ROOT, "data/bench_compression/original_head.fips")
PROFILE = "profiles/x86-64.json"
CACHE = os.path.join(OUT, "plan_reference.cache")
PROTOCOL = "gptq-proxy/profile-x86-64/refit-runtime"
SUBSET_STRIDE = 1000  # training images per class between the starts of two head-training subsets


def mean_sd(xs):
    m = sum(xs) / len(xs)
    sd = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0
    return m, sd


def run(cmd):
    p = bench.run(cmd, echo=bench.shown(cmd))
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
    ap.add_argument("--head-subsets", type=int, default=5, help="disjoint 200-per-class training subsets to refit the head on")
    ap.add_argument("--test-per-class", type=int, default=1000, help="test images per class (1000 = the whole test split)")
    ap.add_argument("--reuse-artifacts", action="store_true",
                    help="score an existing data/plan_bench/plan_vs_BUDGET_MODE.fips instead of planning it again")
    ap.add_argument("--no-fp32-row", action="store_true", help="do not score the fp32 model")
    ap.add_argument("--table-only", action="store_true", help="build nothing; write the table from the results so far")
    a = ap.parse_args()
    if not 1 <= a.head_subsets <= 6:
        raise SystemExit("--head-subsets must be 1...6 (Fashion-MNIST has 6,000 training images per class)")
    os.makedirs(OUT, exist_ok=True)
    results = json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}
    protocol = f"{PROTOCOL}/subsets{a.head_subsets}/test{a.test_per_class}"

    def save():
        json.dump(results, open(RESULTS + ".tmp", "w"), indent=1, sort_keys=True)
        os.replace(RESULTS + ".tmp", RESULTS)

    def key(budget, mode):
        return f"{budget}/{mode}/steps{a.steps}/calib{a.calib_images}/{protocol}"

    def score(path, k, extra):
        """Refit the head on each training subset, then one eval pass scores the original and every refitted head."""
        refits = []
        t0 = time.time()
        for i in range(a.head_subsets):
            refit = f"{path[:-5]}.refit{i}.fips"
            hd, herr = run([FIPS, "head", "--model", path, "--fashion-mnist", "--per-class", "200",
                            "--skip-per-class", str(i * SUBSET_STRIDE), "--threads", "2", "-o", refit])
            if hd is None:
                raise SystemExit(herr)
            refits.append(refit)
        cmd = [FIPS, "eval", "--model", path, "--fashion-mnist", "--per-class", str(a.test_per_class), "--threads", "2",
               "--reference", HEAD, "--reference-cache", CACHE, "--json"]
        for r in refits:
            cmd += ["--also-head", r]
        ev, everr = run(cmd)
        if ev is None:
            raise SystemExit(everr)
        r = json.loads(ev.strip().splitlines()[-1])
        results[k] = dict(extra, top1=r["top1"], top1_refits=r["extra_top1"], cls_cosine=r["mean_cls_cosine"],
                          refit_artifact=os.path.getsize(refits[0]), score_s=time.time() - t0)
        save()
        for f in refits:
            os.remove(f)
        m, _ = mean_sd(r["extra_top1"])
        print(f"{k}: top-1 {100 * r['top1']:.2f}% (refitted, mean of {len(refits)}: {100 * m:.2f}%), CLS cosine "
              f"{r['mean_cls_cosine']:.4f}  {extra.get('plan', '')}", flush=True)
        return results[k]

    def build_and_score(budget, mode):
        k = key(budget, mode)
        if k in results:
            return results[k]
        path = os.path.join(OUT, f"plan_vs_{budget}_{mode}.fips")
        t0 = time.time()
        if not (a.reuse_artifacts and os.path.exists(path) and os.path.exists(path[:-5] + ".plan.json")):
            cmd = [PLAN, "--model", HEAD, "--calib", "fashion-mnist", "--profile", PROFILE, "--threads", "2", "--budget", budget,
                   "--calib-images", a.calib_images, "--steps", a.steps, "-o", path,
                   "--camera", "none"]  # as measured: before the camera's buffers were counted
            if mode != "plan":
                cmd += ["--uniform", mode[len("uniform"):]]
            out, err = run(cmd)
            if out is None:
                print(err, flush=True)
                results[k] = {"budget": budget, "mode": mode, "error": err.strip().splitlines()[-1]}
                save()
                return results[k]
        plan = json.load(open(path[:-5] + ".plan.json"))
        return score(path, k, {"budget": budget, "mode": mode, "plan": describe(plan),
                               "memory": plan["totals"]["memory_bytes"], "budget_bytes": plan["budget"]["memory_bytes"],
                               "artifact": os.path.getsize(path), "proxy": plan["totals"]["error"],
                               "predicted_ms": plan["totals"]["predicted_ms"], "build_s": time.time() - t0,
                               "uniform_fit": plan.get("uniform_settings_that_fit", [])})

    budgets = a.budgets.split(",")
    for budget in ([] if a.table_only else budgets):
        p = build_and_score(budget, "plan")
        fit = p.get("uniform_fit", [])
        n = min(len(fit), a.uniform_count)
        for i in range(1, n + 1):
            build_and_score(budget, f"uniform{i}")
    fp32_key = f"fp32/{protocol}"
    if not a.table_only and not a.no_fp32_row and fp32_key not in results:
        score(HEAD, fp32_key, {"mode": "fp32", "artifact": os.path.getsize(HEAD)})

    n_sub = a.head_subsets
    subsets = ", ".join(f"{i * SUBSET_STRIDE}–{i * SUBSET_STRIDE + 199}" for i in range(n_sub))
    rows = ["| budget | model | per group (mlp, bits mlp/attn) | memory (artifact + arena + buffers + frame) | artifact | error proxy "
            f"| predicted ms (x86-64 profile, 2 threads) | top-1, original head | top-1, refitted head (per subset) "
            f"| top-1, refitted head (mean of {n_sub}) | mean CLS cosine |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]

    def refit_cells(v):
        m, _ = mean_sd(v["top1_refits"])
        return " / ".join(f"{100 * t:.2f}" for t in v["top1_refits"]), f"{100 * m:.2f}%"

    if fp32_key in results:
        v = results[fp32_key]
        per, mean = refit_cells(v)
        rows.append(f"| — | fp32 | dense fp32 | — | {v['artifact']} | 0 | — | {100 * v['top1']:.2f}% | {per} | {mean} | 1.0000 |")
    verdicts, coverage = [], []
    for budget in budgets:
        keys = [k for k in results if k.startswith(f"{budget}/") and k.endswith(f"/steps{a.steps}/calib{a.calib_images}/{protocol}")]
        keys.sort(key=lambda k: (results[k]["mode"] != "plan", int(results[k]["mode"][7:] or 0) if results[k]["mode"] != "plan" else 0))
        for k in keys:
            v = results[k]
            if "error" in v:
                rows.append(f"| {budget} | {v['mode']} | — | — | — | — | — | {v['error']} | — | — | — |")
                continue
            per, mean = refit_cells(v)
            rows.append(f"| {budget} | {v['mode']} | {v['plan']} | {v['memory']} / {v['budget_bytes']} | {v['artifact']} | "
                        f"{v['proxy']:.4f} | {v['predicted_ms']:.1f} | {100 * v['top1']:.2f}% | {per} | {mean} | "
                        f"{v['cls_cosine']:.4f} |")
        plan = [results[k] for k in keys if results[k]["mode"] == "plan" and "top1" in results[k]]
        uni = [results[k] for k in keys if results[k]["mode"] != "plan" and "top1" in results[k]]
        if plan:
            fit = plan[0].get("uniform_fit", [])
            listed = ", ".join(f"#{u['k']} {u['setting']} ({u['error']:.3g})" for u in fit)
            coverage.append(f"- {budget}: {len(fit)} uniform settings fit; evaluated {len(uni)} "
                            f"({'all of them' if len(uni) >= len(fit) else f'the top {len(uni)} by the error proxy'}). "
                            f"All that fit, best proxy first: {listed}")
        if not (plan and uni):
            continue
        pl = plan[0]
        best = max(uni, key=lambda v: v["top1"])
        d = 100 * (pl["top1"] - best["top1"])
        verdicts.append(f"- {budget}, original head: plan {100 * pl['top1']:.2f}% vs best uniform ({best['mode']}) "
                        f"{100 * best['top1']:.2f}%: {d:+.2f} pt ({'plan ≥ uniform' if d >= 0 else 'plan BELOW uniform'})")
        best = max(uni, key=lambda v: mean_sd(v["top1_refits"])[0])
        diffs = [100 * (p - u) for p, u in zip(pl["top1_refits"], best["top1_refits"])]
        m, sd = mean_sd(diffs)
        se = sd / len(diffs) ** 0.5
        verdicts.append(f"- {budget}, refitted head (paired over {len(diffs)} training subsets): plan "
                        f"{100 * mean_sd(pl['top1_refits'])[0]:.2f}% vs best uniform ({best['mode']}) "
                        f"{100 * mean_sd(best['top1_refits'])[0]:.2f}%: {m:+.2f} pt (per subset "
                        f"{', '.join(f'{x:+.2f}' for x in diffs)}; sd {sd:.2f}, se {se:.2f}) "
                        f"({'plan ≥ uniform' if m >= 0 else 'plan BELOW uniform'})")
        if fp32_key in results:
            f32 = results[fp32_key]["top1_refits"]
            against = [(name, mean_sd([100 * (x - y) for x, y in zip(v["top1_refits"], f32)])[0])
                       for name, v in [("plan", pl)] + [(u["mode"], u) for u in uni]]
            verdicts.append(f"- {budget}, refitted head against the fp32 model's own refitted heads "
                            f"({100 * mean_sd(f32)[0]:.2f}%), paired: " + ", ".join(f"{n} {d:+.2f} pt" for n, d in against))
        best = max(uni, key=lambda v: v["cls_cosine"])
        d = pl["cls_cosine"] - best["cls_cosine"]
        verdicts.append(f"- {budget}, CLS cosine: plan {pl['cls_cosine']:.4f} vs best uniform ({best['mode']}) "
                        f"{best['cls_cosine']:.4f}: {d:+.4f} ({'plan ≥ uniform' if d >= 0 else 'plan BELOW uniform'})")
    n_test = 10 * a.test_per_class
    text = ("<!-- written by Benchmarks/plan_vs_uniform.py -->\n"
            "# fips-plan vs the best uniform setting\n\n"
            f"DINOv2-S/14 + Fashion-MNIST head (trained on 2,000 fp32 training features, 200 per class), reduced protocol: "
            f"{a.calib_images} calibration images, {a.steps} reconstruction steps per FiPS group, GPTQ (error proxy with GPTQ too), "
            f"latency priced by profiles/x86-64.json at 2 threads, integer runtime; {n_test:,} test images "
            f"({a.test_per_class} per class). Original head: the artifact's own (q8). "
            f"Refitted head: fips head on 200 training images per class, trained on the artifact's integer-runtime features, "
            f"once per disjoint training subset (images {subsets} of each class); the verdict is the paired mean over the "
            f"subsets. CLS cosine: mean cosine of the final CLS token to the fp32 model's. "
            "Uniform = the same choice in every group, ranked by the planner's error proxy; uniformK is the K-th.\n\n"
            + "\n".join(rows) + "\n\nUniform settings:\n\n" + "\n".join(coverage) + "\n\nVerdicts:\n\n" + "\n".join(verdicts)
            + "\n\nCommand: `python3 Benchmarks/plan_vs_uniform.py " + " ".join(x for x in sys.argv[1:] if x != "--table-only") + "`"
            + f" (scoring one model: {mean_sd([v['score_s'] for v in results.values() if 'score_s' in v])[0] / 60:.0f} min on 2 cores)\n")
    open(os.path.join(ROOT, "Benchmarks/plan_results.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
