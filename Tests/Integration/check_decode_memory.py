#!/usr/bin/env python3
"""fips-run's image decode keeps its memory promise (run by scripts/test.sh).

    python3 Tests/Integration/check_decode_memory.py [--fips-run .build/release/fips-run] [--fipsd .build/release/fipsd]
                                                     [--model data/dinov2_s.q8.fips]

Makes its inputs at run time with PIL in a temporary folder (nothing large is
committed) and checks:
  - a 24-megapixel baseline JPEG (chelsea.png upscaled to 6000x4000) is
    classified with a peak RSS under the artifact + arena that --verbose
    reports plus 40 MB, far below the 72 MB its full-size RGB decode alone
    would take (measured: 45.7 MB; 187.6 MB before the reduced decode); the
    same frame through fipsd --stdin-no-drop within the same bound;
  - with --full-decode the same image is refused by the default 8 MP limit;
  - an oversize PNG (10 MP, PNGs are not reduced), a 60000x60000 header, a
    header claiming 16000x12000 over 32x24 pixels of data, and a 24 MP
    progressive JPEG (its full-size coefficient buffer) are each refused with
    one line naming the file, while a good image after them is still
    classified (exit status 1) and the peak RSS stays within the same bound.
"""
import argparse
import io
import os
import re
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLACK = 40_000_000


def run(fips_run, model, *args):
    p = subprocess.run([fips_run, "--model", model, "--verbose", *args], capture_output=True, text=True)
    m = re.search(r"memory bound: artifact (\d+) \+ arena (\d+)", p.stderr)
    rss = re.search(r"peak RSS (\d+) bytes", p.stderr)
    if not m or not rss:
        sys.exit(f"check_decode_memory: no memory figures from fips-run:\n{p.stderr}")
    return p, int(m.group(1)) + int(m.group(2)), int(rss.group(1))


def child_peak_rss(cmd, stdin_path):
    """Runs cmd with stdin from a file in a child Python that reports its child's
    peak RSS (getrusage of the waited-for children, so only this command counts)."""
    probe = ("import resource, subprocess, sys\n"
             "p = subprocess.run(sys.argv[2:], stdin=open(sys.argv[1], 'rb'), capture_output=True, text=True)\n"
             "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
             "print(p.stdout, end='')\n")
    out = subprocess.run([sys.executable, "-c", probe, stdin_path, *cmd], capture_output=True, text=True, check=True).stdout
    head, _, rest = out.partition("\n")
    rc, rss = (int(x) for x in head.split())
    return rc, rss, rest


def lying_header(width, height):
    """A valid 32x24 JPEG whose SOF0 claims width x height."""
    buf = io.BytesIO()
    Image.open(os.path.join(ROOT, "data/photos/chelsea.png")).convert("RGB").resize((32, 24)).save(buf, "JPEG")
    b = bytearray(buf.getvalue())
    i = 2
    while b[i + 1] != 0xC0:
        i += 2 + ((b[i + 2] << 8) | b[i + 3])
    b[i + 5:i + 7] = height.to_bytes(2, "big")
    b[i + 7:i + 9] = width.to_bytes(2, "big")
    return bytes(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fips-run", default=os.path.join(ROOT, ".build/release/fips-run"))
    ap.add_argument("--fipsd", default=os.path.join(ROOT, ".build/release/fipsd"))
    ap.add_argument("--model", default=os.path.join(ROOT, "data/dinov2_s.q8.fips"))
    a = ap.parse_args()
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        photo = Image.open(os.path.join(ROOT, "data/photos/chelsea.png")).convert("RGB")
        big = photo.resize((6000, 4000), Image.BICUBIC)
        files = {n: os.path.join(tmp, n) for n in
                 ["big.jpg", "big_progressive.jpg", "big.png", "liar.jpg", "liar_fits.jpg", "good.png"]}
        big.save(files["big.jpg"], quality=90)
        big.save(files["big_progressive.jpg"], quality=90, progressive=True)
        photo.resize((4000, 2500), Image.BICUBIC).save(files["big.png"], compress_level=1)
        with open(files["liar.jpg"], "wb") as f:
            f.write(lying_header(60000, 60000))
        with open(files["liar_fits.jpg"], "wb") as f:
            f.write(lying_header(16000, 12000))
        photo.save(files["good.png"])

        p, bound, rss = run(a.fips_run, a.model, files["big.jpg"])
        print(f"check_decode_memory: 6000x4000 JPEG: peak RSS {rss} bytes, artifact + arena {bound}, "
              f"limit {bound + SLACK}; {p.stderr.splitlines()[-2] if p.returncode == 0 else ''}")
        if p.returncode != 0 or '"cls_norm"' not in p.stdout:
            problems.append(f"the 24 MP JPEG was not classified:\n{p.stderr}")
        if rss >= bound + SLACK:
            problems.append(f"peak RSS {rss} bytes on the 24 MP JPEG is over {bound} + {SLACK}")

        rc, rss, out = child_peak_rss([a.fipsd, "--model", a.model, "--stdin-no-drop", "--quiet"], files["big.jpg"])
        print(f"check_decode_memory: the same JPEG through fipsd --stdin-no-drop: peak RSS {rss} bytes")
        if rc != 0 or '"cls_norm"' not in out:
            problems.append(f"fipsd did not classify the 24 MP JPEG: exit {rc}, output {out[:300]!r}")
        if rss >= bound + SLACK:
            problems.append(f"fipsd's peak RSS {rss} bytes on the 24 MP JPEG is over {bound} + {SLACK}")

        p, _, _ = run(a.fips_run, a.model, "--full-decode", files["big.jpg"])
        want = f"{files['big.jpg']}: image is 6000x4000 = 24000000 pixels, over the limit of 8000000"
        if p.returncode != 1 or want not in p.stderr:
            problems.append(f"--full-decode of the 24 MP JPEG was not refused by the 8 MP limit:\n{p.stderr}")

        bad = ["big.png", "liar.jpg", "liar_fits.jpg", "big_progressive.jpg"]
        p, bound, rss = run(a.fips_run, a.model, *[files[n] for n in bad], files["good.png"])
        expected = {
            "big.png": "image is 4000x2500 = 10000000 pixels, over the limit of 8000000",
            "liar.jpg": "image is 60000x60000 = 3600000000 pixels; decoded at 1/8 it is 7500x7500 = 56250000 pixels, over the limit of 8000000",
            "liar_fits.jpg": "corrupt JPEG: premature end of data segment",  # fits at 1/8 (2000x1500); its data ends early
            "big_progressive.jpg": "progressive JPEG of 6000x4000 needs 72000000 bytes of decoder memory at any scale, over the limit of 24000000",
        }
        errors = [l for l in p.stderr.splitlines() if l.startswith("fips-run: ")]
        for n in bad:
            line = next((l for l in errors if l.startswith(f"fips-run: {files[n]}: ")), None)
            print(f"check_decode_memory: {n}: {line}")
            if line is None or expected[n] not in line:
                problems.append(f"{n}: expected an error line with {expected[n]!r}, got {line!r}")
        if p.returncode != 1 or p.stdout.count('"cls_norm"') != 1 or "good.png" not in p.stdout:
            problems.append(f"the good image after the refused ones: exit {p.returncode}, stdout {p.stdout!r}")
        if rss >= bound + SLACK:
            problems.append(f"peak RSS {rss} bytes over the refused images is over {bound} + {SLACK}")
        print(f"check_decode_memory: refused images then a good one: peak RSS {rss} bytes")
    for pr in problems:
        print("check_decode_memory: FAIL: " + pr, file=sys.stderr)
    if problems:
        sys.exit(1)
    print("check_decode_memory: ok")


if __name__ == "__main__":
    main()
