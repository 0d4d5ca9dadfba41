#!/usr/bin/env python3
"""The C API (include/fips.h) gives what fips-run gives: examples/classify.c linked
against the host's libfips-c.so and examples/classify.py through ctypes, and with
--device-bin the same C file linked statically against the board's libfips.a and run
under qemu beside that board's fips-run.

    python3 Tests/Integration/check_capi.py [--bin .build/release] [--model M.fips ...]
                                            [--device-bin build/rpi5 --qemu qemu-aarch64-static]

For every model and image: the same labels, the scores equal to fips-run's 6 digits,
the embedding bit for bit; a file that is no image: exit 1 and a line naming it;
a missing model: exit 3. The board's libfips.a exports the functions of fips.h and nothing
else, so a program with its own zlib or libjpeg links with it.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fail(msg):
    sys.exit(f"check_capi: FAIL: {msg}")


def lines(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    return r.returncode, [json.loads(l) for l in r.stdout.splitlines() if l.strip()], r.stderr


def compare(what, got, ref):
    if len(got) != len(ref):
        fail(f"{what}: {len(got)} results, fips-run gave {len(ref)}")
    for g, r in zip(got, ref):
        name = os.path.basename(r["image"])
        if [t["label"] for t in g.get("top", [])] != [t["label"] for t in r.get("top", [])]:
            fail(f"{what} {name}: labels {g.get('top')} != fips-run {r.get('top')}")
        for a, b in zip(g.get("top", []), r.get("top", [])):
            if abs(a["score"] - b["score"]) > 5e-6 * max(abs(b["score"]), 1e-30) + 1e-12:
                fail(f"{what} {name}: score {a['score']} != fips-run {b['score']}")
        # Both print 9 significant digits or more: the float32 values round-trip exactly.
        import struct
        f32 = lambda v: struct.unpack("f", struct.pack("f", v))[0]  # noqa: E731
        if [f32(v) for v in g["embedding"]] != [f32(v) for v in r["embedding"]]:
            fail(f"{what} {name}: the embedding differs from fips-run's")


def check_exports(lib):
    """libfips.a defines, as global symbols, exactly the functions include/fips.h declares."""
    with open(os.path.join(ROOT, "include/fips.h")) as f:
        api = sorted(set(re.findall(r"\b(fips_[a-z0-9_]*)\(", f.read())))
    out = subprocess.run(["aarch64-linux-gnu-nm", "-g", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
    exported = sorted({l.split()[2] for l in out.splitlines() if len(l.split()) == 3})
    if exported != api:
        fail(f"{lib} exports {sorted(set(exported) - set(api))[:5]} beyond include/fips.h, lacks {sorted(set(api) - set(exported))}")


def check_errors(what, cmd, model, image, work):
    bad = os.path.join(work, "not_an_image.jpg")
    with open(bad, "w") as f:
        f.write("hello\n")
    r = subprocess.run(cmd + [model, image, bad], capture_output=True, text=True, timeout=600)
    if r.returncode != 1 or "not_an_image.jpg" not in r.stderr or len(r.stdout.splitlines()) != 1:
        fail(f"{what}: a bad image: exit {r.returncode}, stderr {r.stderr!r}")
    r = subprocess.run(cmd + [os.path.join(work, "missing.fips"), image], capture_output=True, text=True, timeout=600)
    if r.returncode != 3 or "missing.fips" not in r.stderr:
        fail(f"{what}: a missing model: exit {r.returncode}, stderr {r.stderr!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build/release"))
    ap.add_argument("--model", action="append", help="default: data/fipsd_tiny.fips and data/fipsd_head.q8.fips")
    ap.add_argument("--photos", default=os.path.join(ROOT, "data/photos"))
    ap.add_argument("--device-bin", default="")
    ap.add_argument("--qemu", default="")
    a = ap.parse_args()
    models = a.model or [os.path.join(ROOT, "data/fipsd_tiny.fips"), os.path.join(ROOT, "data/fipsd_head.q8.fips")]
    photos = sorted(os.path.join(a.photos, f) for f in os.listdir(a.photos) if f.endswith((".png", ".jpg")))[:3]
    work = tempfile.mkdtemp(prefix="check_capi.")
    src = os.path.join(ROOT, "examples/classify.c")
    if a.device_bin:
        lib = os.path.join(a.device_bin, "libfips.a")
        exe = os.path.join(work, "classify-aarch64")
        check_exports(lib)
        # A program with its own crc32 and jpeg_std_error (as one linking its own zlib or libjpeg
        # would have) links with libfips.a, and the runtime keeps using its own copies: a broken
        # crc32 would fail every PNG below.
        clash = os.path.join(work, "clash.c")
        with open(clash, "w") as f:
            f.write("unsigned long crc32(unsigned long c, const unsigned char *b, unsigned n) { (void)b; (void)n; return c ^ 1; }\n"
                    "void *jpeg_std_error(void *e) { return e; }\n")
        subprocess.run(["aarch64-linux-gnu-gcc", "-O2", "-Wall", "-Werror", "-static-pie", "-Wl,--gc-sections", src, clash, "-I", a.device_bin,
                        lib, "-lm", "-o", exe], check=True)
        runs = {f"C on {os.path.basename(a.device_bin)} (libfips.a {os.path.getsize(lib) / 1e6:.2f} MB, static) under qemu":
                [a.qemu, exe]}
        fips_run = [a.qemu, os.path.join(a.device_bin, "fips-run")]
    else:
        lib = os.path.join(a.bin, "libfips-c.so")
        if not os.path.exists(lib):
            fail(f"{lib} is missing (swift build -c release builds it: the fips-c product)")
        exe = os.path.join(work, "classify")
        subprocess.run(["cc", "-O2", "-Wall", "-Werror", src, "-I", os.path.join(ROOT, "include"), "-L", a.bin, "-lfips-c",
                        f"-Wl,-rpath,{os.path.abspath(a.bin)}", "-o", exe], check=True)
        runs = {f"C (libfips-c.so {os.path.getsize(lib) / 1e6:.2f} MB)": [exe],
                "Python ctypes": [sys.executable, os.path.join(ROOT, "examples/classify.py"), "--lib", lib]}
        fips_run = [os.path.join(a.bin, "fips-run")]
    for model in models:
        rc, ref, err = lines(fips_run + ["--model", model, "--top-k", "5", "--embedding"] + photos)
        if rc != 0:
            fail(f"fips-run {model}: {err}")
        for what, cmd in runs.items():
            rc, got, err = lines(cmd + [model, "--top-k", "5", "--embedding"] + photos)
            if rc != 0:
                fail(f"{what} {model}: exit {rc}: {err}")
            compare(f"{what} {os.path.basename(model)}", got, ref)
    for what, cmd in runs.items():
        check_errors(what, cmd, models[0], photos[0], work)
    print(f"check_capi: ok: {', '.join(runs)}: {len(models)} models x {len(photos)} images equal to fips-run "
          "(labels, scores, embedding bit for bit); a bad image exits 1, a missing model 3")


if __name__ == "__main__":
    main()
