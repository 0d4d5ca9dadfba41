#!/usr/bin/env python3
"""fips export against the kit's float path (and fips info --json's table
against the file's bytes): each artifact is exported to ONNX
(`fips export --onnx`), the ONNX file is checked (onnx.checker) and run with
onnxruntime on a preprocessed input, and its outputs are compared with
`fips forward` (the artifact as the exporter loads it, integer weights
dequantised, on the host's OpenBLAS forward pass) on the same input.

Error = max |onnxruntime - kit| / max |kit| per output (the output's scale);
exit status 1 when any output of any model is over --tolerance (1e-4).

  python3 Tests/Integration/check_export.py --fips .build/release/fips data/dinov2_s.fips data/fips_smoke.fips

The input is data/golden/chelsea.input.npy (the golden tests' preprocessed
image) when its shape fits the model, else a seeded normal tensor. Unless
--no-tiny, it also checks small random artifacts written from the format's
documentation (tiny_artifact.py) for what data/'s models do not have: tanh
GELU, no LayerScale, a head on concat(CLS, patch mean), a backbone-only FiPS
group sharing one basis, distilled DeiT's distillation token (version 4).
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny_artifact  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def model_input(info, default_path, out_dir):
    m = info["model"]
    shape = (m["channels"], m["image_size"], m["image_size"])
    if os.path.exists(default_path):
        x = np.load(default_path).astype(np.float32)
        if x.shape == shape:
            return default_path, x
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    path = os.path.join(out_dir, "input_%dx%d.npy" % (shape[1], shape[2]))
    np.save(path, x)
    return path, x


def info_tiles_file(artifact, info):
    """fips info's stored data and aux regions tile the file from the first 64-byte boundary
    after the tensor table (read from the header here) to its end, padding only between."""
    with open(artifact, "rb") as f:
        header = f.read(64)
    size = os.path.getsize(artifact)
    table_offset, count = struct.unpack_from("<Q", header, 40)[0], struct.unpack_from("<I", header, 48)[0]
    at = (table_offset + 128 * count + 63) // 64 * 64
    regions = sorted([(t["offset"], t["bytes"]) for t in info["tensors"] if t["stored_in"] is None]
                     + [(t["aux_offset"], t["aux_bytes"]) for t in info["tensors"] if t["stored_in"] is None and t["aux_bytes"]])
    for offset, n in regions:
        if offset != (at + 63) // 64 * 64:
            print("%s: fips info places a region at %d, the file's next one is at %d" % (artifact, offset, (at + 63) // 64 * 64))
            return False
        at = offset + n
    ok = at == size and sum(n for _, n in regions) == info["tensor_data"]["stored_bytes"] and len(info["tensors"]) == count
    if not ok:
        print("%s: fips info's table does not account for the file's %d bytes of tensor data" % (artifact, size))
    return ok


def check(fips, artifact, args):
    info = json.loads(subprocess.run([fips, "info", "--json", artifact], check=True, capture_output=True, text=True).stdout)
    if not info_tiles_file(artifact, info):
        return False
    stem = os.path.splitext(os.path.basename(artifact))[0]
    onnx_path = os.path.join(args.out_dir, stem + ".onnx")
    subprocess.run([fips, "export", artifact, "--onnx", onnx_path], check=True, stdout=subprocess.DEVNULL)
    proto = onnx.load(onnx_path)
    onnx.checker.check_model(proto)
    ops = sorted({n.op_type for n in proto.graph.node})
    # Each FiPS basis the artifact shares is one initializer in the ONNX file too (a quantised
    # artifact's fc1.Ut [r, d] is exported as fc1.U [d, r], the float layout).
    initializers = {t.name for t in proto.graph.initializer}
    def onnx_name(name):
        return name[:-1] if name.endswith(".Ut") else name
    for basis in info["shared_bases"]:
        copies = sorted({n for n in initializers for b in basis["blocks"] for f in basis["factors"]
                         if n == onnx_name("blocks.%d.%s" % (b, f))})
        if copies != [onnx_name(basis["tensor"])]:
            print("%s: shared basis %s is stored as %s in the ONNX file" % (artifact, basis["tensor"], copies))
            return False
    input_path, x = model_input(info, args.input, args.out_dir)
    kit = json.loads(subprocess.run([fips, "forward", "--model", artifact, "--input", input_path, "--threads", str(args.threads)],
                                    check=True, capture_output=True, text=True).stdout)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"pixel_values": x[None]})))
    reference = {"embedding": np.array(kit["embedding"], np.float32)[None],
                 "last_hidden_state": np.array(kit["last_hidden_state"], np.float32).reshape([1] + kit["last_hidden_state_shape"])}
    if "logits" in kit:
        reference["logits"] = np.array(kit["logits"], np.float32)[None]
    if sorted(reference) != sorted(names):
        print("%s: ONNX outputs %s, the kit's %s" % (artifact, names, sorted(reference)))
        return False
    ok = True
    for name, ref in reference.items():
        scale = float(np.abs(ref).max())
        err = float(np.abs(got[name] - ref).max()) / scale
        ok &= err <= args.tolerance
        print(json.dumps({"model": artifact, "output": name, "shape": list(ref.shape), "scale": round(scale, 6),
                          "max_abs_error_rel": err, "ok": err <= args.tolerance}))
    shared = len(info["shared_bases"])
    print(json.dumps({"model": artifact, "onnx": onnx_path, "onnx_bytes": os.path.getsize(onnx_path), "nodes": len(proto.graph.node),
                      "initializers": len(proto.graph.initializer), "fips_shared_bases": shared, "ops": ops,
                      "dtypes": sorted(info["stored_bytes_by_dtype"]), "input": input_path}))
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", help=".fips artifacts")
    p.add_argument("--fips", default=os.path.join(ROOT, ".build/release/fips"))
    p.add_argument("--input", default=os.path.join(ROOT, "data/golden/chelsea.input.npy"))
    p.add_argument("--out-dir", default="/tmp/fips_export_check")
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-tiny", action="store_true", help="skip the tiny variant artifacts")
    args = p.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    models = list(args.models)
    if not args.no_tiny:
        variants = {"tiny_tanh_meanpool": dict(gelu_tanh=True, layer_scale=False, mean_pool=True, seed=1),
                    "tiny_fips_backbone": dict(fips_rank=6, classes=0, seed=2),
                    "tiny_distilled": dict(distilled=True, seed=3)}
        for name, kw in variants.items():
            path = os.path.join(args.out_dir, name + ".fips")
            tiny_artifact.write_tiny(path, **kw)
            models.append(path)
    results = [check(args.fips, m, args) for m in models]
    if not all(results):
        print("check_export: an exported model differs from the kit's float path by more than %g of its output scale" % args.tolerance)
        return 1
    print("check_export: %d model(s) within %g" % (len(results), args.tolerance))
    return 0


if __name__ == "__main__":
    sys.exit(main())
