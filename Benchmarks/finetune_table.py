#!/usr/bin/env python3
"""End-to-end recovery by distillation (`fips finetune`) on DINOv2-S/14 with a Fashion-MNIST head.

Protocol (the compression table's): head trained on the first 200 training images per class,
evaluated on the first 200 test images per class with the original head (and a refitted one),
mean CLS cosine to the fp32 model; compression calibrated on 256 training images after the
first 200 per class. Fine-tuning data: Fashion-MNIST training images after the first 200 per
class (`fips finetune --data fashion-mnist --images N`), never the head's images or the test
split. Each row says the flags it used beyond the defaults.

    python3 Benchmarks/finetune_table.py [--rows fips57s0.5,svd57,plan22] [--images 6400] [--steps 200]
    python3 Benchmarks/finetune_table.py --rows dense4,dense3,dense2,fips33s0q4,fips33s0q3,fips33s0q2 \
        --qat-images 320 --qat-steps 40 --qat-batch 8

Quantisation-aware rows (issue 15): `denseB` quantises the original model to B bits (`fips quantize
--bits B`, GPTQ, calibrated like compress), `fipsLsSqB` the FiPS model of the compressed row fipsLsS,
`fipsLsSftqB` the same after float fine-tuning (--images/--steps) and before quantising;
each is evaluated after post-training quantisation (PTQ) and after `fips finetune --qat` with the same
images and steps for every row. plan rows train with --finetune-steps (QAT by default).

Resumable: finished rows are kept in data/bench_finetune/results.json and skipped. A row run with
--finetune-flags is kept under its own key (`fips57s0.5/after-loss_features+cls_head_student`), so
it sits beside the defaults' row. The keys ending -loss_features+cls... were measured with the
defaults before fips finetune's became features+cls+logits with the teacher's head.
Writes Benchmarks/finetune_results.md.
"""
import argparse
import json
import os
import re
import time

import bench_common as bench
from bench_common import FIPS, FIPS_PLAN, ROOT

OUT = os.path.join(ROOT, "data/bench_finetune")
RESULTS = os.path.join(OUT, "results.json")
# DINOv2-S: backbone parameters and MLP weights (fc1 + fc2 of 12 blocks).
BACKBONE, MLP_WEIGHTS = 21_628_800, 12 * 2 * 384 * 1536


def run(prog, args, capture=True):
    name = os.path.basename(prog)
    p = bench.run([prog] + args, echo=f"{name} " + " ".join(args), capture=capture,
                  fail=lambda p: f"{name} {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout


def load_results():
    return json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}


def save_results(r):
    json.dump(r, open(RESULTS + ".tmp", "w"), indent=1, sort_keys=True)
    os.replace(RESULTS + ".tmp", RESULTS)


def evaluate(path, original, cache):
    out = run(FIPS, ["eval", "--model", path, "--fashion-mnist", "--per-class", "200", "--reference", original,
                     "--reference-cache", cache, "--also-head", original, "--json"])
    ev = json.loads(out.strip().splitlines()[-1])
    return {"top1_original_head": ev["extra_top1"][0], "top1_own_head": ev["top1"], "cls_cosine": ev["mean_cls_cosine"]}


def finetune(student, teacher, out, a):
    t0 = time.time()
    log = run(FIPS, ["finetune", "--model", student, "--teacher", teacher, "--data", "fashion-mnist",
                     "--images", str(a.images), "--steps", str(a.steps), "-o", out] + a.finetune_flags.split())
    m = re.search(r"loss ([\d.e+-]+) -> ([\d.e+-]+), ([\d.]+) images/s", log)
    return {"finetune_seconds": time.time() - t0, "finetune_log": log,
            "loss_first": float(m.group(1)) if m else None, "loss_last": float(m.group(2)) if m else None,
            "images_per_second": float(m.group(3)) if m else None}


def compressed_row(kind, level, sparsity, original, cache, a, results, tune=True):
    """FiPS or per-layer SVD at a whole-model compression level, before and (tune) after fine-tuning.
    Returns the fp32 model's path: the fine-tuned one when tune."""
    key = f"{kind}{int(round(level * 100))}s{sparsity:g}"
    budget = 1 - level * BACKBONE / MLP_WEIGHTS
    path = os.path.join(OUT, f"{key}.fips")
    flags = ["--method", kind, "--sparsity", f"{sparsity:g}"]
    if key + "/before" not in results or not os.path.exists(path):   # (re)made where the file is gone
        t0 = time.time()
        log = run(FIPS, ["compress", "--model", original, "--calib", "fashion-mnist", "--calib-images", "256",
                         "--mlp-budget", f"{budget:.4f}", "--refit-head", "fashion-mnist", "-o", path] + flags)
        m = re.search(r"whole-model compression ([\d.]+)%", log)
        r = {"label": f"{kind.upper()} {100 * level:.0f}% (s={sparsity:g})", "stage": "compressed",
             "compression": float(m.group(1)) / 100 if m else None, "seconds": time.time() - t0,
             "flags": "fips compress " + " ".join(flags) + f" --mlp-budget {budget:.4f} --refit-head fashion-mnist"}
        r.update(evaluate(path, original, cache))
        results[key + "/before"] = r
        save_results(results)
        print(json.dumps(r), flush=True)
    # a run with extra flags is its own row (and file), beside the defaults' row
    tag = re.sub(r"[^A-Za-z0-9.+]+", "_", a.finetune_flags.strip()).strip("_")
    suffix = f"-{tag}" if tag else ""
    tuned = os.path.join(OUT, f"{key}.ft{suffix}.fips")
    if tune and key + "/after" + suffix not in results:
        r = dict(results[key + "/before"])
        r.update(finetune(path, original, tuned, a))
        r["stage"] = "fine-tuned" + (f", {a.finetune_flags.strip()}" if tag else "")
        r["flags"] = f"fips finetune --images {a.images} --steps {a.steps} {a.finetune_flags}".strip()
        r.update(evaluate(tuned, original, cache))
        results[key + "/after" + suffix] = r
        save_results(results)
        print(json.dumps({k: v for k, v in r.items() if k != "finetune_log"}), flush=True)
    return tuned if tune else path


def quantised_row(name, label, source, bits, original, cache, a, results):
    """`source` quantised to `bits` (PTQ), then trained quantisation-aware (QAT) with the same images and steps."""
    ptq = os.path.join(OUT, f"{name}.ptq.fips")
    if name + "/ptq" not in results:
        t0 = time.time()
        flags = ["--bits", str(bits), "--calib", "fashion-mnist", "--calib-images", "256"]
        run(FIPS, ["quantize", "--model", source, "-o", ptq] + flags)
        r = {"label": label, "stage": f"PTQ {bits}-bit", "seconds": time.time() - t0,
             "artifact_bytes": os.path.getsize(ptq), "flags": "fips quantize " + " ".join(flags)}
        r.update(evaluate(ptq, original, cache))
        results[name + "/ptq"] = r
        save_results(results)
        print(json.dumps(r), flush=True)
    if name + "/qat" not in results:
        qat = os.path.join(OUT, f"{name}.qat.fips")
        t0 = time.time()
        flags = ["--qat", "--images", str(a.qat_images), "--steps", str(a.qat_steps), "--batch", str(a.qat_batch)]
        log = run(FIPS, ["finetune", "--model", ptq, "--teacher", original, "--data", "fashion-mnist", "-o", qat] + flags)
        m = re.search(r"loss ([\d.e+-]+) -> ([\d.e+-]+), ([\d.]+) images/s", log)
        r = {"label": label, "stage": f"QAT {bits}-bit", "finetune_seconds": time.time() - t0,
             "artifact_bytes": os.path.getsize(qat), "flags": "fips finetune " + " ".join(flags), "finetune_log": log,
             "images_per_second": float(m.group(3)) if m else None}
        r.update(evaluate(qat, original, cache))
        results[name + "/qat"] = r
        save_results(results)
        print(json.dumps({k: v for k, v in r.items() if k != "finetune_log"}), flush=True)


def plan_row(budget, original, cache, a, results):
    """fips-plan at a budget, with and without --finetune-steps."""
    for steps in ([0] if "before" in a.plan_stages else []) + ([a.qat_steps] if "after" in a.plan_stages else []):
        key = f"plan{budget}/after{steps}" if steps else f"plan{budget}/before"
        if key in results:
            continue
        path = os.path.join(OUT, f"plan{budget}.ft{steps}.fips" if steps else f"plan{budget}.pt.fips")
        # --camera none: the table's plans were measured before fips-plan counted the
        # camera's buffers (3.38 MB at its default 640x480), and this host run has no camera.
        flags = ["--budget", f"{budget}MB", "--camera", "none"] + (["--finetune-steps", str(steps), "--finetune-images", str(a.qat_images),
                                                 "--finetune-batch", str(a.qat_batch)] if steps else [])
        t0 = time.time()
        log = run(FIPS_PLAN, ["--model", original, "--calib", "fashion-mnist", "--board", "rpi5", "-o", path] + flags)
        r = {"label": f"fips-plan --budget {budget}MB", "stage": f"QAT {steps} steps" if steps else "PTQ",
             "seconds": time.time() - t0, "flags": "fips-plan --board rpi5 " + " ".join(flags),
             "artifact_bytes": os.path.getsize(path), "plan_log": log}
        r.update(evaluate(path, original, cache))
        results[key] = r
        save_results(results)
        print(json.dumps({k: v for k, v in r.items() if k != "plan_log"}), flush=True)


def write_table(results):
    o = results.get("original", {})
    rows = ["| model | stage | whole-model compression | top-1 (original head) | top-1 (own head) | mean CLS cosine | time | flags beyond the defaults |",
            "|---|---|---|---|---|---|---|---|",
            f"| DINOv2-S/14 fp32 | original | 0% | {100 * o.get('top1', 0):.2f}% | — | 1.000000 | — | — |"]
    for key in sorted(k for k in results if k != "original"):
        v = results[key]
        comp = f"{100 * v['compression']:.1f}%" if v.get("compression") else f"{v.get('artifact_bytes', 0) / 1e6:.2f} MB file"
        t = v.get("finetune_seconds", v.get("seconds", 0))
        rows.append(f"| {v['label']} | {v['stage']} | {comp} | {100 * v['top1_original_head']:.2f}% | "
                    f"{100 * v['top1_own_head']:.2f}% | {v['cls_cosine']:.6f} | {t / 60:.1f} min | `{v['flags']}` |")
    md = os.path.join(ROOT, "Benchmarks/finetune_results.md")
    with open(md, "w") as f:
        f.write("<!-- written by Benchmarks/finetune_table.py -->\n" + "\n".join(rows) + "\n")
    print("\n".join(rows))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="fips57s0.5,svd57,plan22")
    ap.add_argument("--images", type=int, default=6400, help="fine-tuning images (one pass with the default steps)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--finetune-flags", default="", help="extra fips finetune flags, said in the table")
    ap.add_argument("--qat-images", type=int, default=6400, help="images of the QAT rows and of fips-plan --finetune-images")
    ap.add_argument("--qat-steps", type=int, default=200, help="steps of the QAT rows and of fips-plan --finetune-steps")
    ap.add_argument("--qat-batch", type=int, default=32)
    ap.add_argument("--plan-stages", default="before,after", help="plan rows to build: before (no training), after (--finetune-steps)")
    ap.add_argument("--model", default=os.path.join(ROOT, "data/dinov2_s.fips"))
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    results = load_results()
    original = os.path.join(OUT, "original_head.fips")
    cache = os.path.join(OUT, "reference.cache")
    if not os.path.exists(original):
        run(FIPS, ["head", "--model", a.model, "--fashion-mnist", "--per-class", "200", "-o", original], capture=False)
    if "original" not in results:
        out = run(FIPS, ["eval", "--model", original, "--fashion-mnist", "--per-class", "200", "--reference", original,
                         "--reference-cache", cache, "--json"])
        results["original"] = json.loads(out.strip().splitlines()[-1])
        save_results(results)
    for row in a.rows.split(","):
        m = re.fullmatch(r"(fips|svd)(\d+)(?:s([\d.]+))?", row)
        # dense3, fips33s0q3 (quantised after compression), fips33s0ftq3 (after compression and float fine-tuning)
        q = re.fullmatch(r"(?:dense|(fips)(\d+)s([\d.]+)(ft)?q)(\d)", row)
        if q and not q.group(1):
            bits = int(q.group(5))
            quantised_row(row, f"dense {bits}-bit", original, bits, original, cache, a, results)
        elif q:
            level, sp, tuned, bits = int(q.group(2)), float(q.group(3)), bool(q.group(4)), int(q.group(5))
            src = compressed_row("fips", level / 100, sp, original, cache, a, results, tune=tuned)
            label = f"FIPS {level}% (s={sp:g}){' fine-tuned' if tuned else ''} {bits}-bit"
            quantised_row(row, label, src, bits, original, cache, a, results)
        elif m:
            compressed_row(m.group(1), int(m.group(2)) / 100, float(m.group(3) or 0), original, cache, a, results)
        elif row.startswith("plan"):
            plan_row(int(row[4:]), original, cache, a, results)
        else:
            raise SystemExit(f"unknown row {row}")
        write_table(results)
    write_table(results)


if __name__ == "__main__":
    main()
