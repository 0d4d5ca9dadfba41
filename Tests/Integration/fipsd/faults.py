"""The world going wrong: a full disk and rotation, a missing camera, bad arguments at start."""
import os
import subprocess
import sys

from .common import ROOT, ARGS, check, cmd, Daemon


def test_output(work):
    img = open(os.path.join(ROOT, "Tests/Integration/fipsd/base.jpg"), "rb").read()
    d = Daemon(work, "--model", ARGS.tiny, "--listen", 0, "--output", "/dev/full", name="full")
    for _ in range(5):
        st, _ = d.request("POST", "/classify", img)
        check(st == 200, "classifying with a full output disk")
    m = d.metrics()
    check(m.get('fipsd_errors_total{kind="output_write"}', 0) == 5, f"output errors: {m}")
    check("No space left on device" in d.log(), "the log does not name the full disk")
    check(d.log().count("cannot write") == 1, "logged more than once per outage")
    d.stop()
    out = os.path.join(work, "rot.jsonl")
    r = Daemon(work, "--model", ARGS.tiny, "--listen", 0, "--output", out, "--rotate-bytes", 1000, name="rot")
    for _ in range(12):
        r.request("POST", "/classify", img)
    r.stop()
    check(os.path.exists(out + ".1"), "no rotated file")
    check(os.path.getsize(out + ".1") <= 1000 and os.path.getsize(out) <= 1000, "rotated files over the size")
    n = sum(len(open(p).read().splitlines()) for p in (out, out + ".1"))
    check(n >= 4, "lines lost in rotation")
    return "a full disk (/dev/full): 5 lines dropped, counted, logged once, still serving; --rotate-bytes 1000 rotated"


def test_camera(work):
    d = Daemon(work, "--model", ARGS.tiny, "--listen", 0, "--camera", "/dev/fipsd-no-such-camera", name="cam")
    d.wait_for(lambda: d.log().count("camera /dev/fipsd-no-such-camera") >= 2, 30, "two camera attempts (backoff)")
    check("No such file or directory; retrying in" in d.log(), "missing camera message")
    m = d.metrics()
    check(m.get('fipsd_errors_total{kind="camera_open"}', 0) >= 2, "camera_open errors")
    check(d.request("GET", "/healthz")[0] == 200, "healthz with no camera")
    d.stop()
    d2 = Daemon(work, "--model", ARGS.tiny, "--listen", 0, "--camera", "/dev/null", name="cam2")
    d2.wait_for(lambda: "camera /dev/null" in d2.log(), 30, "the /dev/null camera message")
    check("not a V4L2 device" in d2.log(), "/dev/null: " + d2.log())
    d2.stop()
    return "a missing camera and /dev/null are logged with the reason and retried with backoff; HTTP keeps serving"


def test_usage(work):
    bad = os.path.join(work, "bad.fips")
    data = bytearray(open(ARGS.tiny, "rb").read())
    data[-10] ^= 1
    open(bad, "wb").write(data)
    headless = os.path.join(work, "headless.fips")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts/fixtures/make_tiny_model.py"), headless, "--classes", "0"],
                   check=True, capture_output=True)
    # (arguments, what stderr must say, exit status: 2 a bad command line, 3 a model or file that cannot be used)
    cases = [
        ([], "missing --model", 2),
        (["--model", ARGS.tiny], "no source", 2),
        (["--model", ARGS.tiny, "--frobnicate"], "unknown option --frobnicate", 2),
        (["--model", ARGS.tiny, "--listen", "localhost:80x"], "is not [HOST:]PORT", 2),
        (["--model", ARGS.tiny, "--listen", "localhost:8080"], "not a numeric IPv4 or IPv6 address", 2),
        (["--model", os.path.join(work, "nope.fips"), "--stdin"], "No such file or directory", 3),
        (["--model", bad, "--stdin"], "checksum", 3),
        (["--model", ARGS.tiny, "--watch", os.path.join(work, "nodir")], "No such file or directory", 3),
        (["--model", ARGS.tiny, "--camera-size", "big", "--stdin"], "WIDTHxHEIGHT", 2),
        (["--model", ARGS.tiny, "--listen", 0, "--http-timeout", "700"], "with its unit", 2),   # seconds or ms?
        (["--model", ARGS.tiny, "--stdin", "--max-body", "8 parsecs"], "--max-body needs a size", 2),
        (["--model", headless, "--top-k", "3", "--stdin"], "has no classification head, so --top-k", 2),
        (["--model", ARGS.tiny, "--stdin", "--output", os.path.join(work, "nodir", "out.jsonl")], "cannot open for appending", 3),
    ]
    for args, want, status in cases:
        r = subprocess.run(cmd(ARGS.fipsd, *args), capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        # A model without planned input limits adds one " note: " line naming the defaults used;
        # that is information, not the problem, so the one-line rule counts the other lines.
        err = "".join(l for l in r.stderr.decode().splitlines(keepends=True) if " note: " not in l)
        check(r.returncode == status, f"{args}: exit {r.returncode}, expected {status}; stderr {err}")
        check(want in err and err.count("\n") == 1, f"{args}: stderr {err!r} lacks {want!r}")
        check("USAGE" not in err and "--help" not in err or status == 2, f"{args}: a runtime error printed usage: {err!r}")
    r = subprocess.run(cmd(ARGS.fipsd, "--help"), capture_output=True, timeout=60)
    check(r.returncode == 0 and b"EXAMPLES:" in r.stdout, "--help")
    return f"{len(cases)} bad invocations: exit 2 (command line) or 3 (model, file), one line naming the problem; --help has examples"
