#!/usr/bin/env python3
"""Swift fp32 forward pass vs onnxruntime fp32, same model, same machine,
same thread count, batch 1, in one run. Reports medians and the ratio.

    python3 Benchmarks/forward_vs_onnxruntime.py [--threads 2] [--runs 30]

Needs: swift build -c release; data/vit_s_focus.onnx and data/dinov2_s.fips
(scripts/setup.sh, fips import). onnxruntime==1.32.0.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

import bench_common as bench
from bench_common import ROOT

BACKBONE_OUT = "/backbone/layernorm/Add_1_output_0"


def cut_at_backbone(m):
    """Keeps only the nodes the backbone output depends on, so both sides
    compute the same thing (the saliency decoder after it is dropped)."""
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    needed, stack = set(), [BACKBONE_OUT]
    while stack:
        v = stack.pop()
        n = producer.get(v)
        if n is None or id(n) in needed:
            continue
        needed.add(id(n))
        stack.extend(i for i in n.input if i)
    keep = [n for n in g.node if id(n) in needed]
    del g.node[:]
    g.node.extend(keep)
    del g.output[:]
    g.output.append(onnx.helper.make_tensor_value_info(BACKBONE_OUT, onnx.TensorProto.FLOAT, None))
    used = {i for n in keep for i in n.input}
    inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    return m


def ort_session(path, threads):
    m = cut_at_backbone(onnx.load(path))
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(m.SerializeToString(), o, providers=["CPUExecutionProvider"])


def time_ort(sess, runs, warmup):
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
    name = sess.get_inputs()[0].name
    for _ in range(warmup):
        sess.run(None, {name: x})
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)


def time_swift(model, threads, runs, warmup, kernels):
    out = bench.run([bench.FIPS, "bench", "--model", model, "--threads", str(threads), "--runs", str(runs),
                     "--warmup", str(warmup), "--backend", kernels],
                    check=True, env=dict(os.environ, OPENBLAS_NUM_THREADS=str(threads)))
    return json.loads(out.stdout.strip().splitlines()[-1])["median_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--onnx", default=os.path.join(ROOT, "data/vit_s_focus.onnx"))
    ap.add_argument("--fips", default=os.path.join(ROOT, "data/dinov2_s.fips"))
    ap.add_argument("--portable", action="store_true", help="also time the portable device kernels (slow)")
    a = ap.parse_args()
    sess = ort_session(a.onnx, a.threads)
    rows = []
    # Alternate the two sides twice so drift on a shared machine hits both.
    ort_ms, swift_ms = [], []
    for _ in range(2):
        ort_ms.append(time_ort(sess, a.runs, a.warmup))
        swift_ms.append(time_swift(a.fips, a.threads, a.runs, a.warmup, "blas"))
    o, s = statistics.median(ort_ms), statistics.median(swift_ms)
    rows.append(("onnxruntime %s fp32" % ort.__version__, o, 1.0))
    rows.append(("Swift fp32 (OpenBLAS sgemm)", s, s / o))
    if a.portable:
        p = time_swift(a.fips, 1, max(3, a.runs // 10), 1, "portable")
        rows.append(("Swift fp32 portable kernels, 1 thread", p, p / o))
    print(f"DINOv2-S/14 backbone, batch 1, 224x224, {a.threads} threads, median of {a.runs} runs x2")
    print(f"{'engine':<42} {'median ms':>10} {'vs ORT':>8}")
    for name, ms, r in rows:
        print(f"{name:<42} {ms:>10.2f} {r:>7.2f}x")


if __name__ == "__main__":
    sys.exit(main())
