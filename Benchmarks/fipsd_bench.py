#!/usr/bin/env python3
"""fipsd on the host: frames per second and latency in folder and HTTP mode,
and the daemon's idle CPU and memory.

    python3 Benchmarks/fipsd_bench.py [--model data/dinov2_s.q8.fips] [--fipsd build/x86-64/fipsd]
                                      [--frames 60] [--repeats 3] [--threads 2] [--idle-seconds 10]
                                      [--out Benchmarks/fipsd_results.md]

For each repeat, one fresh daemon:
  folder  --frames copies of the sample photos (data/photos, cycled) are renamed
          into the watched folder at once; frames/s = frames / (last result - first
          rename); latency = the daemon's own "ms" per frame (decode + preprocess +
          forward pass), p50 and p99.
  http    the same photos POSTed one after another by one client (a new
          connection each, as curl does); frames/s = requests / wall time;
          latency = the client's round trip, p50 and p99.
  idle    after the work, the daemon waits --idle-seconds with nothing to do:
          CPU time used in that window (from /proc/PID/stat) as a percentage of one
          core, and RSS (VmRSS) at the end; the peak RSS (VmHWM) of the run.
The table shows the median over the repeats of each figure. The default binary
is the one `./boards/build x86-64 --release` builds (the host build tuned like
the board builds); the model is the int8 DINOv2-S/14 of the README.
"""
import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

import bench_common as bench
from bench_common import ROOT


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick   # utime + stime


def proc_mem(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return -1


def wait_for(pred, timeout, what, p):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return
        if p.poll() is not None:
            raise SystemExit(f"fipsd exited ({p.returncode}) while waiting for {what}")
        time.sleep(0.005)
    raise SystemExit(f"timed out waiting for {what}")


def one_run(a, photos, work):
    inbox = os.path.join(work, "inbox")
    stage = os.path.join(work, "stage")
    os.makedirs(inbox)
    os.makedirs(stage)
    out_path = os.path.join(work, "out.jsonl")
    err_path = os.path.join(work, "err.log")
    names = []
    for i in range(a.frames):
        src = photos[i % len(photos)]
        n = f"{i:04d}_{os.path.basename(src)}"
        shutil.copy(src, os.path.join(stage, n))
        names.append(n)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen([a.fipsd, "--model", a.model, "--watch", inbox, "--listen", "0", "--threads", str(a.threads),
                              "--output", out_path, "--quiet"], stdout=subprocess.DEVNULL, stderr=err)
    try:
        port = {}

        def listening():
            for line in open(err_path).read().splitlines():
                if "listening on http://" in line:
                    port["p"] = int(line.split("listening on http://")[1].split()[0].rsplit(":", 1)[1])
                    return True
            return False
        wait_for(listening, 120, "the listening line", p)
        # Warm-up: one frame through the whole path.
        body = open(photos[0], "rb").read()
        c = http.client.HTTPConnection("127.0.0.1", port["p"], timeout=600)
        c.request("POST", "/classify", body=body)
        c.getresponse().read()
        c.close()

        def lines():
            with open(out_path) as f:
                return [json.loads(l) for l in f.read().splitlines() if l.strip()]
        base = len(lines())
        # folder
        t0 = time.perf_counter()
        for n in names:
            os.rename(os.path.join(stage, n), os.path.join(inbox, n))
        wait_for(lambda: len(lines()) >= base + len(names), 3600, "the folder results", p)
        t1 = time.perf_counter()
        folder = [l for l in lines()[base:] if l.get("source") == "folder"]
        errors = [l for l in folder if "error" in l]
        if errors:
            raise SystemExit(f"folder mode errors: {errors[:3]}")
        folder_ms = [l["ms"] for l in folder]
        folder_fps = len(folder) / (t1 - t0)
        # http
        bodies = [open(photos[i % len(photos)], "rb").read() for i in range(a.frames)]
        rtts = []
        t0 = time.perf_counter()
        for b in bodies:
            s = time.perf_counter()
            c = http.client.HTTPConnection("127.0.0.1", port["p"], timeout=600)
            c.request("POST", "/classify", body=b)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status != 200:
                raise SystemExit(f"HTTP {r.status}")
            rtts.append((time.perf_counter() - s) * 1000)
        t1 = time.perf_counter()
        http_fps = len(bodies) / (t1 - t0)
        # idle
        time.sleep(1)
        c0 = proc_cpu_seconds(p.pid)
        time.sleep(a.idle_seconds)
        c1 = proc_cpu_seconds(p.pid)
        idle_cpu = 100 * (c1 - c0) / a.idle_seconds
        rss = proc_mem(p.pid, "VmRSS")
        hwm = proc_mem(p.pid, "VmHWM")
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=600)
    return {"folder_fps": folder_fps, "folder_p50": percentile(folder_ms, 50), "folder_p99": percentile(folder_ms, 99),
            "http_fps": http_fps, "http_p50": percentile(rtts, 50), "http_p99": percentile(rtts, 99),
            "idle_cpu": idle_cpu, "rss": rss, "hwm": hwm}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "data/dinov2_s.q8.fips"))
    ap.add_argument("--fipsd", default=bench.board_binary("x86-64", "fipsd"))
    ap.add_argument("--photos", default=os.path.join(ROOT, "data/photos"))
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--idle-seconds", type=float, default=10)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    for path, how in [(a.model, "fips import/quantize (README)"), (a.fipsd, "./boards/build x86-64 --release")]:
        if not os.path.exists(path):
            raise SystemExit(f"{path} not found: make it with {how}")
    photos = sorted(os.path.join(a.photos, f) for f in os.listdir(a.photos) if f.lower().endswith((".png", ".jpg")))
    load0 = os.getloadavg()[0]
    runs = []
    for r in range(a.repeats):
        work = tempfile.mkdtemp(prefix="fipsd_bench.")
        try:
            runs.append(one_run(a, photos, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"run {r + 1}/{a.repeats}: " + ", ".join(f"{k} {v:.2f}" for k, v in runs[-1].items()), flush=True)

    def med(k):
        return statistics.median(x[k] for x in runs)
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        f"fipsd {os.path.relpath(a.fipsd, ROOT)}, model {os.path.relpath(a.model, ROOT)} "
        f"({os.path.getsize(a.model)} bytes), --threads {a.threads}, {a.frames} frames per mode "
        f"(the {len(photos)} sample photos cycled), median of {a.repeats} runs; {os.cpu_count()} CPUs ({cpu})",
        "",
        "| mode | frames/s | p50 ms | p99 ms | latency measured as |",
        "|---|---|---|---|---|",
        f"| folder (inotify) | {med('folder_fps'):.2f} | {med('folder_p50'):.2f} | {med('folder_p99'):.2f} | the daemon's decode + preprocess + forward |",
        f"| HTTP POST /classify (1 client) | {med('http_fps'):.2f} | {med('http_p50'):.2f} | {med('http_p99'):.2f} | the client's round trip |",
        "",
        f"idle: {med('idle_cpu'):.3f}% of one core over {a.idle_seconds:g} s (utime+stime from /proc/PID/stat, "
        f"resolution 1/{os.sysconf('SC_CLK_TCK')} s); RSS {med('rss') / 1e6:.1f} MB idle after the runs, "
        f"peak {med('hwm') / 1e6:.1f} MB (VmHWM)",
        "",
        f"Note: this machine may be shared with other jobs (other builds and benchmarks): the 1-minute load "
        f"average was {load0:.2f} before and {os.getloadavg()[0]:.2f} after the runs (the daemon itself adds about "
        f"{a.threads} while busy); figures from one run are comparable with each other, less so across runs.",
    ]
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write("# fipsd benchmark\n\n```\npython3 Benchmarks/fipsd_bench.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in [("frames", a.frames), ("repeats", a.repeats), ("threads", a.threads)]) +
                "\n```\n\n" + text + "\n")


if __name__ == "__main__":
    main()
