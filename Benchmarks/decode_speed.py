#!/usr/bin/env python3
"""Reduced (DCT-domain) JPEG decode against the full-size decode, side by side.

    python3 Benchmarks/decode_speed.py [--model data/dinov2_s.q8.fips] [--rounds 5] [--copies 8]
                                       [--threads 2] [--out Benchmarks/decode_results.md]

Both paths run from the same fips-run binary in the same run: the default
(fips-run decodes a JPEG at 1/2, 1/4 or 1/8 when its shorter side stays at
least the model's resize size) and `--full-decode` (the full-size decode every
image had before). Both get `--max-pixels 50000000`, so that the full decode of
the large images is allowed.

Speed: a 12-megapixel JPEG (data/photos/chelsea.png upscaled to 4000x3000,
quality 90, baseline) is given --copies times on one command line, in --rounds
rounds that alternate the two modes; fips-run --verbose prints each image's
decode and preprocessing (resize, crop, normalise) times. The table has the
medians over all images of a mode and the ratio reduced / full.

Fidelity: the CLS feature (--features-out, token 0 of the final LayerNorm) of
the reduced path against the full path, as a cosine, on the sample photos as
they are (PNGs are never reduced; rocket.jpg is too small to be), each RGB
photo re-encoded as a JPEG at its own size, upscaled to 4000x3000 and
6000x4000 (smooth, like a camera photo with optical blur), and tiled to
4096x3072 (pixel-sharp detail at full size, the worst case for the DCT
scaling's low-pass). Inputs are made at run time in a temporary folder.
"""
import argparse
import os
import platform
import re
import statistics
import tempfile
import time

import numpy as np
from PIL import Image

import bench_common as bench
from bench_common import ROOT

PHOTOS = os.path.join(ROOT, "data", "photos")


def fips_run(model, threads, full, images, features_out=None):
    """Runs fips-run --verbose; returns per-image (decoded size, decode ms, preprocess ms) and the peak RSS."""
    cmd = [bench.FIPS_RUN, "--model", model, "--threads", str(threads), "--verbose", "--max-pixels", "50000000"]
    if full:
        cmd.append("--full-decode")
    if features_out:
        cmd += ["--features-out", features_out]
    p = bench.run(cmd + images, fail=lambda p: f"fips-run failed:\n{p.stderr}")
    rows = re.findall(r"image (.*): decoded (\d+)x(\d+), decode_ms ([0-9.]+), preprocess_ms ([0-9.]+)", p.stderr)
    rss = int(re.search(r"peak RSS (\d+) bytes", p.stderr).group(1))
    return [(path, f"{w}x{h}", float(d), float(pre)) for path, w, h, d, pre in rows], rss


def make_inputs(tmp):
    """The speed image and the fidelity images; returns (speed path, [(label, path)])."""
    chelsea = Image.open(os.path.join(PHOTOS, "chelsea.png")).convert("RGB")
    speed = os.path.join(tmp, "speed_12mp.jpg")
    chelsea.resize((4000, 3000), Image.BICUBIC).save(speed, quality=90)
    fidelity = []
    for name in sorted(os.listdir(PHOTOS)):
        path = os.path.join(PHOTOS, name)
        fidelity.append((f"{name} as it is", path))
        im = Image.open(path)
        if im.mode != "RGB":
            continue
        stem = os.path.splitext(name)[0]
        variants = [
            ("own size, JPEG q90", "native", im),
            ("upscaled 4000x3000, JPEG q90", "up12", im.resize((4000, 3000), Image.BICUBIC)),
            ("upscaled 6000x4000, JPEG q90", "up24", im.resize((6000, 4000), Image.BICUBIC)),
            ("tiled 4096x3072, JPEG q90", "tiled12", tile(im, 4096, 3072)),
        ]
        for label, tag, v in variants:
            out = os.path.join(tmp, f"{stem}_{tag}.jpg")
            v.save(out, quality=90)
            fidelity.append((f"{stem}, {label}", out))
    return speed, fidelity


def tile(im, w, h):
    out = Image.new("RGB", (w, h))
    for y in range(0, h, im.height):
        for x in range(0, w, im.width):
            out.paste(im, (x, y))
    return out


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "data/dinov2_s.q8.fips"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(ROOT, "Benchmarks/decode_results.md"))
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        speed, fidelity = make_inputs(tmp)
        pairs = [(os.path.join(PHOTOS, n), os.path.join(tmp, os.path.splitext(n)[0] + "_native.jpg"))
                 for n in sorted(os.listdir(PHOTOS)) if n.endswith(".png")
                 and os.path.exists(os.path.join(tmp, os.path.splitext(n)[0] + "_native.jpg"))]
        times = {False: [], True: []}
        sizes, rss = {}, {False: [], True: []}
        for r in range(a.rounds):
            for full in ([False, True] if r % 2 == 0 else [True, False]):
                rows, peak = fips_run(a.model, a.threads, full, [speed] * a.copies)
                times[full] += [(d, p) for _, _, d, p in rows]
                sizes[full] = rows[0][1]
                rss[full].append(peak)
        med = {f: (statistics.median(d for d, _ in t), statistics.median(p for _, p in t),
                   statistics.median(d + p for d, p in t)) for f, t in times.items()}

        feats, decoded = {}, {}
        for full in (False, True):
            d = os.path.join(tmp, "full" if full else "reduced")
            rows, _ = fips_run(a.model, a.threads, full, [p for _, p in fidelity], features_out=d)
            decoded[full] = {path: size for path, size, _, _ in rows}
            feats[full] = d
        fid, reencode = [], []
        for png, jpg in pairs:   # the cost of JPEG q90 itself, for scale
            x, y = (np.load(os.path.join(feats[True], os.path.splitext(os.path.basename(f))[0] + ".npy")) for f in (png, jpg))
            reencode.append(cosine(x[0], y[0]))
        for label, path in fidelity:
            stem = os.path.splitext(os.path.basename(path))[0]
            x, y = (np.load(os.path.join(feats[f], stem + ".npy")) for f in (False, True))
            fid.append((label, decoded[True][path], decoded[False][path], cosine(x[0], y[0]),
                        float(np.mean([cosine(x[i], y[i]) for i in range(1, len(x))]))))

    lines = [
        "# Reduced JPEG decode vs full-size decode",
        "",
        f"`python3 Benchmarks/decode_speed.py --rounds {a.rounds} --copies {a.copies} --threads {a.threads}` "
        f"({time.strftime('%Y-%m-%d', time.gmtime())}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, "
        f"model {os.path.relpath(a.model, ROOT)}). One fips-run binary, both paths in the same run, "
        "rounds alternating; medians over all images of a mode.",
        "",
        f"## Speed: 12 MP JPEG (4000x3000, baseline, q90), {a.rounds * a.copies} images per path",
        "",
        "| path | decoded at | decode ms | preprocess ms | decode + preprocess ms | vs full | peak RSS (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for full, name in ((True, "full decode (`--full-decode`, as before)"), (False, "reduced DCT decode (default)")):
        d, p, t = med[full]
        lines.append(f"| {name} | {sizes[full]} | {d:.2f} | {p:.2f} | {t:.2f} | {t / med[True][2]:.3f}x "
                     f"| {statistics.median(rss[full]) / 1e6:.1f} MB |")
    lines += [
        "",
        "## Fidelity: CLS cosine of the reduced path to the full path",
        "",
        "Mean patch-token cosine beside it. Where both paths decode the same size they are the same "
        "code and the cosine is 1 exactly.",
        "",
        "| image | full decode | reduced decode | CLS cosine | mean patch cosine |",
        "|---|---|---|---|---|",
    ]
    for label, full_size, red_size, c, pc in fid:
        lines.append(f"| {label} | {full_size} | {red_size} | {c:.6f} | {pc:.6f} |")
    reduced = [c for _, fs, rs, c, _ in fid if fs != rs]
    lines += ["", f"Reduced images: {len(reduced)}; CLS cosine min {min(reduced):.6f}, "
              f"mean {statistics.mean(reduced):.6f}. For scale, JPEG q90 re-encoding alone (the full path "
              f"on each PNG photo and on its JPEG at the same size): CLS cosine {min(reencode):.6f} to "
              f"{max(reencode):.6f}.", ""]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {os.path.relpath(a.out, ROOT)}")


if __name__ == "__main__":
    main()
