#!/usr/bin/env python3
"""End-to-end checks of the fipsd daemon (scripts/test.sh runs them on the
x86-64 build and on the static aarch64 build under qemu-aarch64-static).

    python3 scripts/check_fipsd.py --fipsd BIN --fips-run BIN --model HEAD.fips --tiny TINY.fips
                                   [--qemu qemu-aarch64-static] [--photos DIR] [--soak-frames 5000]
                                   [--only labels,corrupt,...]

Checks (each prints one PASS/FAIL line; any failure exits 1):
  labels    folder mode and HTTP mode print the same top-5 labels and scores as
            fips-run on every photo (the real model with a head: --model)
  corrupt   500 corrupt/mutated JPEGs (scripts/fixtures/make_corrupt_jpegs.py) in
            folder mode, over HTTP and on stdin: every one gives a result or a
            counted error naming the problem, and the daemon stays up
  soak      --soak-frames frames (default 5000) through the tiny model on stdin,
            then HTTP requests: RSS after warm-up stays within 1 MB
  loopback  --listen PORT binds 127.0.0.1 only; --listen 0.0.0.0:PORT binds all
  sighup    SIGHUP with a corrupted or truncated model keeps serving the old
            model (same answers, reload counted as failed); a good one is taken
  sigterm   SIGTERM while the real model works through a folder: the frame in
            flight finishes (its file in done/), the rest stay queued, exit 0
  http      slow client (408), malformed requests (400/404/405/411/413/431),
            Expect: 100-continue, too many connections (503), a client that
            hangs up mid-body: all counted, the daemon keeps answering
  output    --output /dev/full (a full disk): lines dropped and counted, never
            fatal; --rotate-bytes rotates the file
  camera    a missing camera and a non-camera device are logged, counted and
            retried while HTTP keeps serving
  usage     bad arguments and bad models at start: exit 2 with a message naming
            the problem
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = None
FAILED = []
RUNNING = []   # every daemon started, so a failed test leaves none behind


def say(msg):
    print(f"check_fipsd: {msg}", flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def cmd(binary, *args):
    pre = [ARGS.qemu] if ARGS.qemu else []
    return pre + [binary] + [str(a) for a in args]


class Daemon:
    """A running fipsd with its stderr in a file; stdout to a file or a pipe."""

    def __init__(self, work, *args, stdin=None, stdout_pipe=False, name="d", wait_listen=True):
        self.err_path = os.path.join(work, f"{name}.err")
        self.out_path = os.path.join(work, f"{name}.out")
        self.err = open(self.err_path, "wb")
        self.out = None if stdout_pipe else open(self.out_path, "wb")
        self.p = subprocess.Popen(cmd(ARGS.fipsd, *args), stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE if stdout_pipe else self.out, stderr=self.err)
        RUNNING.append(self.p)
        self.port = None
        if "--listen" in [str(a) for a in args] and wait_listen:
            self.port = self.wait_log_port()

    def log(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def output_lines(self):
        with open(self.out_path, "rb") as f:
            return [json.loads(l) for l in f.read().decode().splitlines() if l.strip()]

    def wait_for(self, pred, timeout, what):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if pred():
                return
            if self.p.poll() is not None:
                raise AssertionError(f"fipsd exited ({self.p.returncode}) while waiting for {what}; log:\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; log:\n{self.log()}")

    def wait_log_port(self):
        found = {}

        def pred():
            for line in self.log().splitlines():
                if "listening on http://" in line:
                    hostport = line.split("listening on http://")[1].split()[0]
                    found["port"] = int(hostport.rsplit(":", 1)[1])
                    found["host"] = hostport.rsplit(":", 1)[0]
                    return True
            return False
        self.wait_for(pred, 60, "the listening line")
        self.host = found["host"]
        return found["port"]

    def request(self, method, path, body=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request(method, path, body=body, headers={"Content-Type": "application/octet-stream"} if body is not None else {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def metrics(self):
        st, body = self.request("GET", "/metrics")
        check(st == 200, f"/metrics answered {st}")
        out = {}
        for line in body.decode().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
        return out

    def rss(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return -1

    def stop(self, expect_rc=0):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise AssertionError("fipsd did not stop within 120 s of SIGTERM")
        self.err.close()
        if self.out:
            self.out.close()
        check(rc == expect_rc, f"fipsd exited {rc}, expected {expect_rc}; log:\n{self.log()[-3000:]}")


def errors_total(m, prefix=""):
    return sum(v for k, v in m.items() if k.startswith('fipsd_errors_total{kind="' + prefix))


def photos():
    return sorted(os.path.join(ARGS.photos, f) for f in os.listdir(ARGS.photos)
                  if f.lower().endswith((".png", ".jpg", ".jpeg")))


# ---------------------------------------------------------------------------

def test_labels(work):
    ph = photos()
    check(len(ph) >= 3, f"need the sample photos in {ARGS.photos} (scripts/setup.sh)")
    r = subprocess.run(cmd(ARGS.fips_run, "--model", ARGS.model, "--top-k", 5, *ph), capture_output=True, timeout=1800)
    check(r.returncode == 0, f"fips-run failed: {r.stderr.decode()}")
    ref = {}
    for line in r.stdout.decode().splitlines():
        j = json.loads(line)
        ref[os.path.basename(j["image"])] = [(t["label"], t["score"]) for t in j["top"]]
    inbox = os.path.join(work, "in")
    os.makedirs(inbox)
    half = len(ph) // 2
    for p in ph[:half]:  # waiting before the start: the start-up scan
        shutil.copy(p, inbox)
    d = Daemon(work, "--model", ARGS.model, "--watch", inbox, "--listen", 0, "--top-k", 5, name="labels")
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
    for p in ph:
        st, body = d.request("POST", "/classify", open(p, "rb").read())
        check(st == 200, f"POST {p}: {st} {body[:200]}")
        j = json.loads(body)
        got = [(t["label"], t["score"]) for t in j["top"]]
        want = ref[os.path.basename(p)]
        check(got == want, f"HTTP {os.path.basename(p)}: {got} != fips-run {want}")
    m = d.metrics()
    check(m['fipsd_frames_total{source="folder"}'] == len(ph), "folder frame count")
    check(m['fipsd_frames_total{source="http"}'] == len(ph), "http frame count")
    d.stop()
    return f"{len(ph)} photos, top-5 labels and scores equal to fips-run in folder and HTTP mode (top-1: " + \
        ", ".join(f"{k}={v[0][0]}" for k, v in sorted(ref.items())) + ")"


def make_corrupt(work):
    out = os.path.join(work, "corrupt_src")
    if not os.path.isdir(out):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts/fixtures/make_corrupt_jpegs.py"),
                        os.path.join(ROOT, "Tests/fipsd/base.jpg"), out, "--count", "500"], check=True)
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
    check(errors_total(m, "image_") == len(errs), f"metrics count {errors_total(m, 'image_')} image errors, output has {len(errs)}")
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
    check(errors_total(m2, "image_") - errors_total(m, "image_") == n422, "HTTP image errors counted")
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
    check(rc == 0, f"stdin mode exited {rc}: {s.log()[-2000:]}")
    sl = s.output_lines()
    check(len(sl) > 0, "stdin mode classified nothing")
    return (f"folder: {500 - failed} decoded, {failed} refused and counted; HTTP: {n200} x 200, {n422} x 422; "
            f"stdin stream: {len(sl)} frames ({sum(1 for l in sl if 'error' in l)} errors), exit 0")


def test_soak(work):
    base = open(os.path.join(ROOT, "Tests/fipsd/base.jpg"), "rb").read()
    prog = open(os.path.join(ROOT, "Tests/fipsd/base_progressive.jpg"), "rb").read()
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
    check(m.get('fipsd_errors_total{kind="image_truncated"}', 0) + m.get('fipsd_errors_total{kind="image_corrupt"}', 0)
          >= n // 10, "bad soak frames not counted")
    return (f"{n} stdin frames in {secs:.1f} s + {n // 5} HTTP requests: RSS {rss[0] / 1e6:.2f} MB after "
            f"{warm} frames, max {max(rss) / 1e6:.2f} MB, growth {growth} bytes (limit 1048576)")


def listening_address(port):
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(path):
            continue
        for line in open(path).read().splitlines()[1:]:
            f = line.split()
            local, state = f[1], f[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return local.rsplit(":", 1)[0]
    return None


def other_address():
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout.split()
    except Exception:
        return None
    for a in out:
        if "." in a and not a.startswith("127."):
            return a
    return None


def test_loopback(work):
    d = Daemon(work, "--model", ARGS.tiny, "--listen", 0, name="lo")
    addr = listening_address(d.port)
    check(d.host == "127.0.0.1", f"default host {d.host}")
    check(addr == "0100007F", f"--listen PORT: the socket is bound to {addr}, not 127.0.0.1 (0100007F)")
    note = ""
    other = other_address()
    if other:
        s = socket.socket()
        s.settimeout(3)
        try:
            s.connect((other, d.port))
            raise AssertionError(f"--listen PORT accepted a connection on {other}")
        except (ConnectionRefusedError, socket.timeout, OSError):
            note = f"; a connection to {other}:{d.port} is refused"
        finally:
            s.close()
    d.stop()
    d2 = Daemon(work, "--model", ARGS.tiny, "--listen", "0.0.0.0:0", name="any")
    addr2 = listening_address(d2.port)
    check(addr2 == "00000000", f"--listen 0.0.0.0:PORT bound {addr2}")
    if other:
        s = socket.create_connection((other, d2.port), timeout=5)
        s.close()
    d2.stop()
    return f"--listen PORT binds 127.0.0.1 only{note}; --listen 0.0.0.0:PORT binds every address"


def test_sighup(work):
    model = os.path.join(work, "model.fips")
    shutil.copy(ARGS.tiny, model)
    good = open(ARGS.tiny, "rb").read()
    img = open(os.path.join(ROOT, "Tests/fipsd/base.jpg"), "rb").read()
    d = Daemon(work, "--model", model, "--listen", 0, name="hup")
    st, r1 = d.request("POST", "/classify", img)
    check(st == 200, "first answer")
    top1 = json.loads(r1)["top"]

    def info(m):
        return [k for k in m if k.startswith("fipsd_model_info")][0]
    info1 = info(d.metrics())

    def replace(data):  # as a deployment does it: a new file renamed over the old
        tmp = model + ".new"
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, model)

    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x40
    cases = [("corrupted (one flipped bit)", bytes(bad), "checksum"),
             ("truncated", good[:len(good) // 3], "truncated"),
             ("not a model", b"hello world, not a model\n" * 10, "not a .fips model"),
             ("empty", b"", "empty")]
    for i, (what, data, expect) in enumerate(cases, 1):
        replace(data)
        d.p.send_signal(signal.SIGHUP)
        d.wait_for(lambda: d.log().count("model reload failed") == i, 60, f"the failed reload ({what})")
        last = [l for l in d.log().splitlines() if "model reload failed" in l][-1]
        check(expect in last, f"reload of a {what} model: log says '{last}', expected '{expect}'")
        st, r = d.request("POST", "/classify", img)
        check(st == 200 and json.loads(r)["top"] == top1, f"after a {what} model: {st} {r[:200]}")
        check(d.request("GET", "/healthz")[0] == 200, "healthz")
    m = d.metrics()
    check(m['fipsd_model_reloads_total{result="failed"}'] == len(cases), "failed reloads counted")
    check(info(m) == info1, "model info unchanged")
    # A good new model is taken.
    other = os.path.join(work, "other.fips")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts/fixtures/make_tiny_model.py"), other, "--seed", "2"], check=True)
    replace(open(other, "rb").read())
    d.p.send_signal(signal.SIGHUP)
    d.wait_for(lambda: "model reloaded" in d.log(), 60, "the good reload")
    m = d.metrics()
    check(m['fipsd_model_reloads_total{result="ok"}'] == 1, "ok reload counted")
    check(info(m) != info1, "model info changed after a good reload")
    st, r = d.request("POST", "/classify", img)
    check(st == 200 and json.loads(r)["top"] != top1, "the new model answers")
    d.stop()
    return f"{len(cases)} bad models (corrupted, truncated, not a model, empty) kept the old one serving; a good one replaced it"


def test_sigterm(work):
    ph = photos()
    inbox = os.path.join(work, "tin")
    os.makedirs(inbox)
    for p in ph:
        shutil.copy(p, inbox)
    d = Daemon(work, "--model", ARGS.model, "--watch", inbox, "--threads", 1, name="term")
    d.wait_for(lambda: len(d.output_lines()) >= 1, 1800, "the first result")
    d.p.send_signal(signal.SIGTERM)
    rc = d.p.wait(timeout=600)
    check(rc == 0, f"exit status {rc} after SIGTERM")
    lines = d.output_lines()
    done = sorted(os.listdir(os.path.join(inbox, "done")))
    waiting = sorted(f for f in os.listdir(inbox) if os.path.isfile(os.path.join(inbox, f)))
    check(sorted(l["file"] for l in lines) == done, f"results {[l['file'] for l in lines]} vs done/ {done}")
    check(len(done) + len(waiting) == len(ph), f"files lost: done {done}, waiting {waiting}")
    check(len(waiting) >= 1, "SIGTERM did not stop before the end of the queue")
    check("stopping on signal" in d.log(), "no shutdown log line")
    return f"SIGTERM after the first result: {len(done)} finished and moved to done/, {len(waiting)} left queued, exit 0"


def raw(port, data, read=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    if read:
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except socket.timeout:
            pass
    s.close()
    return out


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except Exception:
        return None


def test_http(work):
    img = open(os.path.join(ROOT, "Tests/fipsd/base.jpg"), "rb").read()
    d = Daemon(work, "--model", ARGS.tiny, "--listen", 0, "--http-timeout", 700, "--max-body", 100000,
               "--max-connections", 4, name="http")
    port = d.port
    # Slow client: half a request head, then nothing.
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(b"POST /classify HTTP/1.1\r\nContent-Le")
    t0 = time.time()
    st, _ = d.request("POST", "/classify", img)   # others are still served meanwhile
    check(st == 200, "a normal request while a slow client waits")
    resp = slow.recv(4096)
    waited = time.time() - t0
    slow.close()
    check(status_of(resp) == 408, f"slow client got {resp[:80]!r}")
    cases = [
        (b"GARBAGE\r\n\r\n", 400, "malformed request line"),
        (b"GET /nowhere HTTP/1.1\r\n\r\n", 404, "unknown path"),
        (b"GET /classify HTTP/1.1\r\n\r\n", 405, "GET /classify"),
        (b"POST /classify HTTP/1.1\r\nContent-Length: 200000\r\n\r\n", 413, "body over --max-body"),
        (b"POST /classify HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "chunked body"),
        (b"POST /classify HTTP/1.1\r\n\r\n", 411, "POST without Content-Length"),
        (b"POST /classify HTTP/1.1\r\nContent-Length: x1\r\n\r\n", 400, "bad Content-Length"),
        (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431, "head over 8 KB"),
        (b"GET /healthz HTTP/2.0\r\n\r\n", 505, "HTTP/2.0"),
        (b"POST /classify HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd", 422, "a body that is not an image"),
    ]
    for data, want, what in cases:
        got = status_of(raw(port, data))
        check(got == want, f"{what}: status {got}, expected {want}")
    # Expect: 100-continue (curl sends it for larger bodies).
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /classify HTTP/1.1\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(img))
    cont = s.recv(4096)
    check(cont.startswith(b"HTTP/1.1 100"), f"no 100 Continue: {cont[:60]!r}")
    s.sendall(img)
    resp = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        resp += b
    s.close()
    check(status_of(resp) == 200 and b'"top"' in resp, "Expect: 100-continue request")
    # A client that hangs up halfway through its body.
    raw(port, b"POST /classify HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + img[:100], read=False)
    time.sleep(0.3)   # let it be closed, so it does not hold one of the slots below
    # Too many connections: 4 idle ones hold every slot; the fifth gets 503.
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
    time.sleep(0.2)
    fifth = status_of(raw(port, b"GET /healthz HTTP/1.1\r\n\r\n"))
    for s in idle:
        s.close()
    check(fifth == 503, f"fifth connection got {fifth}")
    time.sleep(0.2)
    check(d.request("GET", "/healthz")[0] == 200, "healthz after the bad clients")
    m = d.metrics()
    for k in ["http_timeout", "http_bad_request", "http_body_too_large", "http_too_many_connections"]:
        check(m.get('fipsd_errors_total{kind="%s"}' % k, 0) >= 1, f"{k} not counted: {m}")
    d.stop()
    return (f"slow client answered 408 after {waited:.1f} s while others were served; 400/404/405/411/413/422/431/505, "
            f"100-continue, 503 over --max-connections, hang-up mid-body: all counted, still serving")


def test_output(work):
    img = open(os.path.join(ROOT, "Tests/fipsd/base.jpg"), "rb").read()
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
    cases = [
        ([], "missing --model"),
        (["--model", ARGS.tiny], "no source"),
        (["--model", ARGS.tiny, "--frobnicate"], "unknown option --frobnicate"),
        (["--model", ARGS.tiny, "--listen", "localhost:80x"], "is not [HOST:]PORT"),
        (["--model", ARGS.tiny, "--listen", "localhost:8080"], "not a numeric IPv4 or IPv6 address"),
        (["--model", os.path.join(work, "nope.fips"), "--stdin"], "No such file or directory"),
        (["--model", bad, "--stdin"], "checksum"),
        (["--model", ARGS.tiny, "--watch", os.path.join(work, "nodir")], "No such file or directory"),
        (["--model", ARGS.tiny, "--camera-size", "big", "--stdin"], "WIDTHxHEIGHT"),
    ]
    for args, want in cases:
        r = subprocess.run(cmd(ARGS.fipsd, *args), capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        err = r.stderr.decode()
        check(r.returncode == 2, f"{args}: exit {r.returncode}, stderr {err}")
        check(want in err and err.count("\n") == 1, f"{args}: stderr {err!r} lacks {want!r}")
    r = subprocess.run(cmd(ARGS.fipsd, "--help"), capture_output=True, timeout=60)
    check(r.returncode == 0 and b"EXAMPLES:" in r.stdout, "--help")
    return f"{len(cases)} bad invocations: exit 2, one line naming the problem; --help has examples"


TESTS = [("usage", test_usage), ("labels", test_labels), ("corrupt", test_corrupt), ("soak", test_soak),
         ("loopback", test_loopback), ("sighup", test_sighup), ("sigterm", test_sigterm), ("http", test_http),
         ("output", test_output), ("camera", test_camera)]


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fipsd", required=True)
    ap.add_argument("--fips-run", required=True)
    ap.add_argument("--model", required=True, help="the real model with a classification head")
    ap.add_argument("--tiny", required=True, help="a tiny model (scripts/fixtures/make_tiny_model.py)")
    ap.add_argument("--qemu", default="")
    ap.add_argument("--photos", default=os.path.join(ROOT, "data/photos"))
    ap.add_argument("--soak-frames", type=int, default=5000)
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", action="store_true")
    ARGS = ap.parse_args()
    only = set(ARGS.only.split(",")) if ARGS.only else None
    work = tempfile.mkdtemp(prefix="check_fipsd.")
    where = f"{ARGS.fipsd}" + (f" under {ARGS.qemu}" if ARGS.qemu else "")
    say(f"{where}; work directory {work}")
    for name, fn in TESTS:
        if only and name not in only:
            continue
        sub = os.path.join(work, name)
        os.makedirs(sub)
        t0 = time.time()
        try:
            msg = fn(sub)
            say(f"PASS {name} ({time.time() - t0:.1f} s): {msg}")
        except Exception as e:  # noqa: BLE001 - report every failure, then exit 1
            FAILED.append(name)
            say(f"FAIL {name} ({time.time() - t0:.1f} s): {e}")
        for p in RUNNING:
            if p.poll() is None:
                p.kill()
                p.wait()
        RUNNING.clear()
    if not ARGS.keep and not FAILED:
        shutil.rmtree(work, ignore_errors=True)
    if FAILED:
        say(f"FAILED: {', '.join(FAILED)} (work directory kept: {work})")
        sys.exit(1)
    say("all passed")


if __name__ == "__main__":
    main()
