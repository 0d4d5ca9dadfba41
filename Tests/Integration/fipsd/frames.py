"""Frames through the daemon: labels against fips-run (folder, HTTP), corrupt JPEGs, the RSS soak."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

from .common import ROOT, ARGS, check, cmd, Daemon, frame_errors_total, photos


def test_labels(work):
    ph = photos()
    check(len(ph) >= 3, f"need the sample photos in {ARGS.photos} (scripts/setup.sh)")
    r = subprocess.run(cmd(ARGS.fips_run, "--model", ARGS.model, "--top-k", 5, "--embedding", *ph), capture_output=True,
                       timeout=1800)
    check(r.returncode == 0, f"fips-run failed: {r.stderr.decode()}")
    ref, emb = {}, {}
    for line in r.stdout.decode().splitlines():
        j = json.loads(line)
        ref[os.path.basename(j["image"])] = [(t["label"], t["score"]) for t in j["top"]]
        emb[os.path.basename(j["image"])] = j["embedding"]
    inbox = os.path.join(work, "in")
    os.makedirs(inbox)
    half = len(ph) // 2
    for p in ph[:half]:  # waiting before the start: the start-up scan
        shutil.copy(p, inbox)
    d = Daemon(work, "--model", ARGS.model, "--watch", inbox, "--listen", 0, "--top-k", 5, "--embedding", name="labels")
    for p in ph[half:]:  # arriving while it runs: inotify
        tmp = os.path.join(inbox, "." + os.path.basename(p))
        shutil.copy(p, tmp)
        os.rename(tmp, os.path.join(inbox, os.path.basename(p)))
    done = os.path.join(inbox, "done")
    d.wait_for(lambda: len(os.listdir(done)) == len(ph), 1800, "every photo in done/")
    d.wait_for(lambda: len(d.output_lines()) == len(ph), 60, "one line per photo")
    folder = {j["file"]: [(t["label"], t["score"]) for t in j["top"]] for j in d.output_lines()}
    for name, want in ref.items():
        check(folder.get(name) == want, f"folder mode {name}: {folder.get(name)} != fips-run {want}")
    for j in d.output_lines():
        check(j.get("embedding") == emb[j["file"]], f"folder mode {j['file']}: the embedding differs from fips-run's")
    for p in ph:
        st, body = d.request("POST", "/classify", open(p, "rb").read())
        check(st == 200, f"POST {p}: {st} {body[:200]}")
        j = json.loads(body)
        got = [(t["label"], t["score"]) for t in j["top"]]
        want = ref[os.path.basename(p)]
        check(got == want, f"HTTP {os.path.basename(p)}: {got} != fips-run {want}")
        check(j.get("embedding") == emb[os.path.basename(p)], f"HTTP {os.path.basename(p)}: the embedding differs from fips-run's")
    m = d.metrics()
    check(m['fipsd_frames_total{source="folder"}'] == len(ph), "folder frame count")
    check(m['fipsd_frames_total{source="http"}'] == len(ph), "http frame count")
    d.stop()
    return f"{len(ph)} photos, top-5 labels, scores and --embedding equal to fips-run in folder and HTTP mode (top-1: " + \
        ", ".join(f"{k}={v[0][0]}" for k, v in sorted(ref.items())) + ")"


def make_corrupt(work):
    out = os.path.join(work, "corrupt_src")
    if not os.path.isdir(out):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts/fixtures/make_corrupt_jpegs.py"),
                        os.path.join(ROOT, "Tests/Integration/fipsd/base.jpg"), out, "--count", "500"], check=True)
    return out


def test_corrupt(work):
    src = make_corrupt(work)
    files = sorted(os.listdir(src))
    check(len(files) == 500, "500 corrupt files")
    inbox = os.path.join(work, "cin")
    shutil.copytree(src, inbox)
    d = Daemon(work, "--model", ARGS.tiny, "--watch", inbox, "--listen", 0, "--max-pixels", 4000000, name="corrupt")
    d.wait_for(lambda: len(os.listdir(os.path.join(inbox, "done"))) + len(os.listdir(os.path.join(inbox, "failed"))) == 500,
               900, "all 500 files moved to done/ or failed/")
    d.wait_for(lambda: len(d.output_lines()) == 500, 60, "500 output lines")
    lines = d.output_lines()
    errs = [l for l in lines if "error" in l]
    failed = len(os.listdir(os.path.join(inbox, "failed")))
    check(len(errs) == failed, f"{len(errs)} error lines but {failed} files in failed/")
    check(all(l["error"].startswith(os.path.join(inbox, l["file"]) + ": ") and len(l["error"]) > len(inbox) + 20 for l in errs),
          "every error names the file and the problem")
    check(len(errs) >= 400, f"only {len(errs)} of 500 mutated files were refused")
    m = d.metrics()
    check(frame_errors_total(m) == len(errs), f"metrics count {frame_errors_total(m)} frame errors, output has {len(errs)}")
    # The same bytes over HTTP.
    n422 = n200 = 0
    for f in files:
        st, body = d.request("POST", "/classify", open(os.path.join(src, f), "rb").read())
        j = json.loads(body)
        if st == 200:
            check("top" in j, f"{f}: 200 without top")
            n200 += 1
        else:
            check(st == 422 and "error" in j and "error_kind" in j, f"{f}: HTTP {st} {body[:200]}")
            n422 += 1
    m2 = d.metrics()
    check(frame_errors_total(m2) - frame_errors_total(m) == n422, "HTTP image errors counted")
    check(d.request("GET", "/healthz")[0] == 200, "healthz after the corrupt files")
    d.stop()
    # ... and as one MJPEG stream on stdin (every frame, in order).
    stream = os.path.join(work, "corrupt.mjpg")
    with open(stream, "wb") as out:
        for f in files:
            out.write(open(os.path.join(src, f), "rb").read())
    with open(stream, "rb") as sin:
        s = Daemon(work, "--model", ARGS.tiny, "--stdin-no-drop", "--max-pixels", 4000000, stdin=sin, name="corrupt_stdin")
        rc = s.p.wait(timeout=900)
    check(rc == 1 and "input(s) on stdin failed" in s.log(), f"stdin mode with bad frames exited {rc} (expected 1): {s.log()[-2000:]}")
    sl = s.output_lines()
    check(len(sl) > 0, "stdin mode classified nothing")
    return (f"folder: {500 - failed} decoded, {failed} refused and counted; HTTP: {n200} x 200, {n422} x 422; "
            f"stdin stream: {len(sl)} frames ({sum(1 for l in sl if 'error' in l)} errors), exit 1")


def test_soak(work):
    base = open(os.path.join(ROOT, "Tests/Integration/fipsd/base.jpg"), "rb").read()
    prog = open(os.path.join(ROOT, "Tests/Integration/fipsd/base_progressive.jpg"), "rb").read()
    bad = base[:len(base) // 2] + b"\xff\xd9"   # a whole frame whose data is cut: a decode error
    frames = [base, prog, base, prog, base, prog, base, prog, base, bad]
    n = ARGS.soak_frames
    d = Daemon(work, "--model", ARGS.tiny, "--stdin-no-drop", "--listen", 0, "--threads", 2,
               stdin=subprocess.PIPE, stdout_pipe=True, name="soak")

    def feed():
        try:
            for i in range(n):
                d.p.stdin.write(frames[i % len(frames)])
            d.p.stdin.close()
        except BrokenPipeError:
            pass
    t = threading.Thread(target=feed, daemon=True)
    t.start()
    watchdog = threading.Timer(1800, d.p.kill)   # never hang the test run
    watchdog.start()
    warm = max(1, n // 10)
    samples = []
    count = 0
    t0 = time.time()
    for line in d.p.stdout:
        count += 1
        if count >= warm and (count == warm or count % max(1, n // 20) == 0):
            samples.append((count, d.rss()))
        if count == n:
            break
    watchdog.cancel()
    check(count == n, f"only {count} of {n} frames came out")
    # Keep reading the HTTP results it also prints, or a full pipe would stall it.
    threading.Thread(target=lambda: [None for _ in d.p.stdout], daemon=True).start()
    secs = time.time() - t0
    # HTTP as well, on the warm process.
    for i in range(max(1, n // 5)):
        st, _ = d.request("POST", "/classify", frames[i % len(frames)])
        check(st in (200, 422), f"HTTP soak answered {st}")
        if i % max(1, n // 50) == 0:
            samples.append((n + i, d.rss()))
    samples.append((n + n // 5, d.rss()))
    m = d.metrics()
    t.join(5)
    d.stop()
    rss = [r for _, r in samples]
    growth = max(rss) - rss[0]
    check(growth <= 1 << 20, f"RSS grew {growth} bytes after warm-up (samples: {samples})")
    check(m['fipsd_frames_total{source="stdin"}'] == n - n // 10, f"stdin frame count {m}")
    check(m['fipsd_frame_errors_total{kind="truncated"}'] + m['fipsd_frame_errors_total{kind="corrupt"}']
          >= n // 10, "bad soak frames not counted")
    return (f"{n} stdin frames in {secs:.1f} s + {n // 5} HTTP requests: RSS {rss[0] / 1e6:.2f} MB after "
            f"{warm} frames, max {max(rss) / 1e6:.2f} MB, growth {growth} bytes (limit 1048576)")
