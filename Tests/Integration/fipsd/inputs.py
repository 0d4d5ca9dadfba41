"""Inputs as clients send them: multipart uploads (curl -F, a browser form) and a PNG on stdin."""
import json
import os
import shutil
import subprocess

from .common import ARGS, ROOT, Daemon, check, cmd, photos


def test_inputs(work):
    png = [p for p in photos() if p.endswith(".png")][0]
    jpg = os.path.join(ROOT, "Tests/Integration/fipsd/base.jpg")
    d = Daemon(work, "--model", ARGS.tiny, "--listen", 0, name="inputs")
    st, raw = d.request("POST", "/classify", open(png, "rb").read())
    check(st == 200, f"raw body: {st}")
    want = json.loads(raw)["top"]
    # curl -F, with a text field before the file: the file part is classified.
    check(shutil.which("curl") is not None, "curl is missing")
    url = f"http://127.0.0.1:{d.port}/classify"
    r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-F", "note=hello", "-F", f"image=@{png}", url],
                       capture_output=True, text=True, timeout=120)
    body, _, code = r.stdout.rpartition("\n")
    check(code == "200" and json.loads(body)["top"] == want, f"curl -F: {code} {body[:300]}")
    # A browser form: quoted boundary, CRLFs, the file part only.
    boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + open(png, "rb").read() + f"\r\n--{boundary}--\r\n".encode()
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=120)
    c.request("POST", "/classify", body=form, headers={"Content-Type": f"multipart/form-data; boundary=\"{boundary}\""})
    resp = c.getresponse()
    data = resp.read()
    check(resp.status == 200 and json.loads(data)["top"] == want, f"browser form: {resp.status} {data[:300]}")
    # A multipart body cut inside its part: 400 naming the problem, counted.
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=120)
    c.request("POST", "/classify", body=form[:len(form) // 2], headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    resp = c.getresponse()
    data = resp.read()
    check(resp.status == 400 and b"ends inside a part" in data, f"cut multipart body: {resp.status} {data[:300]}")
    d.stop()
    # stdin: one PNG is classified like the same file over HTTP; exit 0.
    r = subprocess.run(cmd(ARGS.fipsd, "--model", ARGS.tiny, "--stdin", "--quiet"), stdin=open(png, "rb"),
                       capture_output=True, timeout=600)
    lines = [json.loads(l) for l in r.stdout.decode().splitlines()]
    check(r.returncode == 0 and len(lines) == 1 and lines[0].get("top") == want,
          f"a PNG on stdin: exit {r.returncode}, {lines}, {r.stderr.decode()[-500:]}")
    # stdin: bytes that are no image give exit 1 and a line saying so; good JPEGs exit 0.
    r = subprocess.run(cmd(ARGS.fipsd, "--model", ARGS.tiny, "--stdin", "--quiet"), input=b"hello, not an image\n" * 50,
                       capture_output=True, timeout=600)
    err = r.stderr.decode()
    check(r.returncode == 1 and "not part of a JPEG" in err and "input(s) on stdin failed" in err,
          f"text on stdin: exit {r.returncode}, stderr {err}")
    r = subprocess.run(cmd(ARGS.fipsd, "--model", ARGS.tiny, "--stdin", "--stdin-no-drop", "--quiet"),
                       input=open(jpg, "rb").read() * 3, capture_output=True, timeout=600)
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 3, f"3 JPEGs on stdin: exit {r.returncode}, {r.stderr.decode()}")
    features = features_out(work, png)
    return ("curl -F (field + file) and a browser form give the raw body's answer; a cut multipart body: 400; "
            "a PNG on stdin classified, exit 0; text on stdin: exit 1 with a message; 3 JPEGs: exit 0; " + features)


def npy(path):
    import numpy as np
    return np.load(path)


def features_out(work, png):
    """--features-out: fipsd's .npy of a frame equals fips-run's of the same image; a directory it
    cannot create exits 3."""
    ref_dir, dir = os.path.join(work, "run_features"), os.path.join(work, "fipsd_features")
    r = subprocess.run(cmd(ARGS.fips_run, "--model", ARGS.tiny, "--features-out", ref_dir, png), capture_output=True, timeout=600)
    check(r.returncode == 0, f"fips-run --features-out: {r.stderr.decode()}")
    ref = npy(os.path.join(ref_dir, os.path.basename(png).rsplit(".", 1)[0] + ".npy"))
    r = subprocess.run(cmd(ARGS.fipsd, "--model", ARGS.tiny, "--stdin", "--quiet", "--features-out", dir), stdin=open(png, "rb"),
                       capture_output=True, timeout=600)
    line = json.loads(r.stdout.decode().splitlines()[0])
    check(r.returncode == 0 and line.get("features") == os.path.join(dir, "stdin-1.npy"), f"fipsd --features-out: {line}")
    got = npy(line["features"])
    check(got.shape == ref.shape and (got == ref).all(), f"fipsd's features {got.shape} differ from fips-run's {ref.shape}")
    r = subprocess.run(cmd(ARGS.fipsd, "--model", ARGS.tiny, "--stdin", "--features-out", "/proc/no/such"), stdin=open(png, "rb"),
                       capture_output=True, timeout=600)
    check(r.returncode == 3 and b"cannot create the features directory" in r.stderr, f"bad --features-out: {r.returncode} {r.stderr}")
    return f"--features-out: stdin-1.npy {list(got.shape)} equal to fips-run's, an uncreatable directory exits 3"
