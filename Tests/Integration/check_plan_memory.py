#!/usr/bin/env python3
"""A budget is a promise: planned models stay within their budget on large inputs (run by scripts/test.sh).

    python3 Tests/Integration/check_plan_memory.py [--budgets 22:640x480:256KiB:2:none,26,30] [--model data/dinov2_s.fips]
        [--fips-plan .build/release/fips-plan] [--fips-run .build/release/fips-run] [--fipsd .build/release/fipsd]
        [--qemu qemu-aarch64-static --aarch64-fips-run build/rpi5/fips-run --aarch64-budgets 22:640x480:256KiB:2:none]

For each budget, `fips-plan --budget B` (with its default input limits and camera, and
once at 30 MB reserving room for phone photos: 1000x750 decoded, 3 MB
encoded, one connection; a reduced search: 8 calibration
images, one FiPS budget, s=0, so that three plans take minutes) writes a
model whose artifact records its input limits. Then, with no limit flags, so
that the programs take the model's own limits:

  - fips-run on every large input at once: JPEGs of 12, 24 and 48 megapixels,
    baseline and progressive, a 20-megapixel PNG, a CMYK JPEG, a JPEG whose
    header claims 60000x60000, and a small good photo;
  - fipsd watching a folder holding the same files;
  - fipsd over HTTP with 16 concurrent uploads of them (and the good photo);
  - fipsd over HTTP as above while it captures from a 640x480 YUYV camera at
    30 fps, the plan's default `--camera` (a UVC camera emulated by the
    LD_PRELOAD shim Tests/Integration/fipsd/uvc_camera.c, built with gcc): the
    camera's 4 mmap buffers and its waiting RGB frame are in the plan. The
    shim's own copy of its frame (614,400 bytes, which a real driver keeps in
    the kernel) is allowed over the budget. Every plan made with a camera
    gets this leg (by default 26 and 30 MB; the 22 MB and phone-photo plans
    are made with --camera none, see --budgets).

Each process's peak RSS (getrusage of the child, or VmHWM) minus the same
program's baseline (its peak RSS for --help: the program and its shared
libraries before any model) must stay within the plan's budget. Every input
is either classified or refused with a line naming it (HTTP: 413 for a body
over the limit, 503 past the connection limit, 400/422 with the decoder's
message); the good photo is classified each time. Under qemu-aarch64 the
aarch64 fips-run does the same for --aarch64-budgets; qemu's cache of
translated code grows with the code run, so there the inputs' share (peak
RSS less that of the good photo alone) is held to the plan's input reserve.

Inputs are made at run time with PIL from data/photos (nothing large is committed).
"""
import argparse
import concurrent.futures
import select
import socket
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_decode_memory import lying_header  # noqa: E402


def peak_rss(cmd, timeout=1800):
    """(returncode, stdout, stderr, peak RSS bytes) of cmd, measured in a child Python."""
    probe = ("import resource, subprocess, sys, json\n"
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
             "print(json.dumps([p.returncode, p.stdout, p.stderr, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024]))\n")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True, timeout=timeout).stdout
    return tuple(json.loads(out))


def make_inputs(tmp):
    photo = Image.open(os.path.join(ROOT, "data/photos/chelsea.png")).convert("RGB")
    files = {}

    def save(name, img, **kw):
        files[name] = os.path.join(tmp, name)
        img.save(files[name], **kw)
    for mp, (w, h) in [(12, (4000, 3000)), (24, (6000, 4000)), (48, (8000, 6000))]:
        big = photo.resize((w, h), Image.BICUBIC)
        save(f"jpeg{mp}mp.jpg", big, quality=90)
        save(f"jpeg{mp}mp_progressive.jpg", big, quality=90, progressive=True)
    save("png20mp.png", photo.resize((5200, 3900), Image.BICUBIC), compress_level=1)
    save("cmyk12mp.jpg", photo.resize((4000, 3000), Image.BICUBIC).convert("CMYK"), quality=90)
    files["liar.jpg"] = os.path.join(tmp, "liar.jpg")
    with open(files["liar.jpg"], "wb") as f:
        f.write(lying_header(60000, 60000))
    save("good.jpg", photo, quality=90)
    return files


def plan(a, budget, extra, out):
    t0 = time.time()
    p = subprocess.run([a.fips_plan, "--model", a.model, "--calib", "fashion-mnist", "--calib-images", "8",
                        "--mlp-budgets", "0.5", "--sparsities", "0", "--board", "rpi5", "--threads", "2",
                        "--budget", f"{budget}MB", "-o", out, *extra], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"check_plan_memory: fips-plan --budget {budget}MB failed:\n{p.stdout}\n{p.stderr}")
    j = json.load(open(out[:-5] + ".plan.json"))
    line = next(l for l in p.stdout.splitlines() if l.startswith("memory:"))
    print(f"check_plan_memory: {budget} MB plan {' '.join(extra)} in {time.time() - t0:.0f} s: {line}; "
          f"limits {j['input_limits']}")
    return j["totals"]["input_bytes"], j["input_limits"]["camera"]


def check_run_output(name, rc, out, err, files, problems, prog="fips-run"):
    """Every input is classified (a JSON line) or refused (an error line naming it)."""
    done = {json.loads(l)["image"] for l in out.splitlines() if l.startswith("{")}
    refused = {f for f in files.values() if any(l.startswith(f"{prog}: {f}: ") for l in err.splitlines())}
    for n, f in files.items():
        if f not in done and f not in refused:
            problems.append(f"{name}: {n} neither classified nor refused by name (exit {rc})\n{err}")
    if files["good.jpg"] not in done:
        problems.append(f"{name}: the good photo was not classified\n{err}")
    return sorted(os.path.basename(f) for f in done), sorted(os.path.basename(f) for f in refused)


def vm_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024


class Fipsd:
    def __init__(self, fipsd, model, tmp, *args, env=None):
        self.err = os.path.join(tmp, "fipsd.err")
        self.out = os.path.join(tmp, "fipsd.out")
        self.p = subprocess.Popen([fipsd, "--model", model, *args], stdout=open(self.out, "wb"),
                                  stderr=open(self.err, "wb"), stdin=subprocess.DEVNULL, env=env)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline and self.port is None:
            m = re.search(r"listening on http://[^:\s]+:(\d+)", self.log())
            if m:
                self.port = int(m.group(1))
            elif "--listen" not in args and "watching" in self.log():
                break
            time.sleep(0.05)

    def log(self):
        return open(self.err, "rb").read().decode("utf-8", "replace")

    def lines(self):
        return [json.loads(l) for l in open(self.out, "rb").read().decode().splitlines() if l.strip()]

    def stop(self):
        hwm = vm_hwm(self.p.pid)
        self.p.terminate()
        self.p.wait(timeout=30)
        return hwm


def post(port, body):
    """POST /classify the way a careful client does: stops sending once the
    server has answered (an early 413 or 503), then reads the answer.
    (status, body text); status 0 when the connection ended without one."""
    s = socket.create_connection(("127.0.0.1", port), timeout=300)
    try:
        s.sendall(f"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        sent = 0
        while sent < len(body):
            if select.select([s], [], [], 0)[0]:
                break
            try:
                sent += s.send(body[sent:sent + 65536])
            except (BrokenPipeError, ConnectionResetError):
                break
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + content_length(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionError, socket.timeout) as e:
        return 0, str(e)
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.1 (\d+)", data)
    return (int(m.group(1)), data.split(b"\r\n\r\n", 1)[1].decode("utf-8", "replace")) if m else (0, data.decode("latin-1"))


def content_length(data):
    m = re.search(rb"\r\nContent-Length: (\d+)", data, re.I)
    return int(m.group(1)) if m else 0


def check_fipsd(a, model, spec, files, tmp, base, problems):
    budget = int(spec.split(":")[0])
    # Folder: the inputs are renamed in (IN_MOVED_TO); each ends in done/ or failed/.
    watch = os.path.join(tmp, "watch")
    os.makedirs(watch)
    d = Fipsd(a.fipsd, model, tmp, "--watch", watch, "--threads", "2")
    for n, f in files.items():
        # Copied beside the folder, then renamed in: shutil.copy's chmod after the write raced
        # fipsd, which classifies a file on close-after-write and had already moved it.
        staged = os.path.join(tmp, "." + n)
        shutil.copy(f, staged)
        os.rename(staged, os.path.join(watch, n))
    deadline = time.time() + 600
    while time.time() < deadline:
        left = [n for n in os.listdir(watch) if os.path.isfile(os.path.join(watch, n))]
        if not left:
            break
        time.sleep(0.2)
    hwm = d.stop()
    done = sorted(os.listdir(os.path.join(watch, "done"))) if os.path.isdir(os.path.join(watch, "done")) else []
    failed = sorted(os.listdir(os.path.join(watch, "failed"))) if os.path.isdir(os.path.join(watch, "failed")) else []
    print(f"check_plan_memory: {spec} MB, fipsd --watch: peak RSS {hwm} - baseline {base} = {hwm - base} "
          f"(budget {budget * 10**6}); done {done}, failed {failed}")
    if "good.jpg" not in done or len(done) + len(failed) != len(files):
        problems.append(f"{spec} MB fipsd --watch: done {done}, failed {failed}\n{d.log()}")
    if hwm - base > budget * 10**6:
        problems.append(f"{spec} MB fipsd --watch: peak RSS {hwm} - baseline {base} over the budget")
    shutil.rmtree(watch)

    # HTTP: 16 uploads at once (each input, the good photo for the rest).
    d = Fipsd(a.fipsd, model, tmp, "--listen", "127.0.0.1:0", "--threads", "2")
    if d.port is None:
        problems.append(f"{spec} MB fipsd --listen: no listening line\n{d.log()}")
        d.stop()
        return
    bodies = [open(f, "rb").read() for f in files.values()]
    bodies += [open(files["good.jpg"], "rb").read()] * (16 - len(bodies))
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        answers = list(ex.map(lambda b: post(d.port, b), bodies))
    # The good photo alone afterwards: the daemon still serves.
    after = post(d.port, open(files["good.jpg"], "rb").read())
    hwm = d.stop()
    statuses = sorted(s for s, _ in answers)
    print(f"check_plan_memory: {spec} MB, fipsd --listen, 16 concurrent uploads: peak RSS {hwm} - baseline {base} = "
          f"{hwm - base} (budget {budget * 10**6}); statuses {statuses}, then {after[0]}")
    for s, body in answers:
        if s == 200:
            continue
        if s not in (400, 413, 422, 503) or '"error"' not in body:
            problems.append(f"{spec} MB fipsd HTTP: status {s} without an error naming the problem: {body[:300]!r}")
    if after[0] != 200:
        problems.append(f"{spec} MB fipsd HTTP: the good photo after the burst got {after}")
    if hwm - base > budget * 10**6:
        problems.append(f"{spec} MB fipsd HTTP: peak RSS {hwm} - baseline {base} over the budget")


UVC_DEVICE = "/dev/fips-plan-memory-video0"   # no such file: only the shim answers for it


def check_camera(a, model, spec, camera, files, tmp, base, problems):
    """fipsd capturing from the planned camera (YUYV at 30 fps, so a frame always waits while the model
    works) and serving 16 concurrent uploads of the large inputs: peak RSS less the baseline within the budget."""
    budget = int(spec.split(":")[0])
    w, h = (int(v) for v in camera.split("x"))
    so = os.path.join(tmp, "uvc_camera.so")
    if not os.path.exists(so):
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", so,
                        os.path.join(ROOT, "Tests/Integration/fipsd/uvc_camera.c"), "-ldl", "-lpthread"], check=True)
    frame = os.path.join(tmp, f"frame{w}x{h}.yuyv")
    with open(frame, "wb") as f:   # a mid-grey picture with some colour: Y U Y V per pixel pair
        f.write(bytes([100, 110, 150, 140]) * (w * h // 2))
    env = dict(os.environ, LD_PRELOAD=so, FIPS_UVC_DEVICE=UVC_DEVICE, FIPS_UVC_YUYV=frame,
               FIPS_UVC_SIZE=f"{w}x{h}", FIPS_UVC_FPS="30")
    # No --camera-size: fipsd takes the planned one.
    d = Fipsd(a.fipsd, model, tmp, "--camera", UVC_DEVICE, "--listen", "127.0.0.1:0", "--threads", "2", env=env)
    if d.port is None:
        problems.append(f"{spec} MB fipsd --camera: no listening line\n{d.log()}")
        d.stop()
        return

    def camera_lines():
        return [l for l in d.lines() if l.get("source") == "camera"]
    deadline = time.time() + 120
    while time.time() < deadline and len(camera_lines()) < 2:
        time.sleep(0.1)
    bodies = [open(f, "rb").read() for f in files.values()]
    bodies += [open(files["good.jpg"], "rb").read()] * (16 - len(bodies))
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        answers = list(ex.map(lambda b: post(d.port, b), bodies))
    # The good photo alone afterwards: decoded and classified while camera frames wait.
    after = post(d.port, open(files["good.jpg"], "rb").read())
    seen = len(camera_lines())
    deadline = time.time() + 120
    while time.time() < deadline and len(camera_lines()) < seen + 3:   # frames after the burst: it still captures
        time.sleep(0.1)
    hwm = d.stop()
    frames = camera_lines()
    shim = w * h * 2
    statuses = sorted(s for s, _ in answers)
    log = d.log()
    print(f"check_plan_memory: {spec} MB, fipsd --camera ({camera} YUYV, 30 fps) + 16 concurrent uploads: peak RSS {hwm} "
          f"- baseline {base} = {hwm - base} (budget {budget * 10**6}, + {shim} for the shim's frame); "
          f"{len(frames)} camera frames, statuses {statuses}, then {after[0]}")
    if f"streaming YUYV {camera}" not in log:
        problems.append(f"{spec} MB fipsd --camera: not streaming the planned {camera}\n{log}")
    if after[0] != 200:
        problems.append(f"{spec} MB fipsd --camera: the good photo after the burst got {after}")
    if len(frames) < seen + 3 or any("error" in l for l in frames):
        problems.append(f"{spec} MB fipsd --camera: {len(frames)} camera frames ({seen} before the burst)\n{log}")
    for l in log.splitlines():
        if " note: " in l or " warning: " in l:
            problems.append(f"{spec} MB fipsd --camera: the planned model and camera should need no note: {l}")
    if hwm - base > budget * 10**6 + shim:
        problems.append(f"{spec} MB fipsd --camera: peak RSS {hwm} - baseline {base} over the budget")


def main():
    ap = argparse.ArgumentParser()
    rel = os.path.join(ROOT, ".build/release")
    ap.add_argument("--budgets", default="22:640x480:256KiB:2:none,26,30,30:1000x750:3MB:1:none",
                    help="MB[:max-pixels:max-input-bytes:max-connections[:camera]], comma-separated: the fips-plan "
                         "limits (default 640x480, 256KiB, 2, camera 640x480); the last plan reserves room for phone "
                         "photos; it and the 22 MB plan are made with --camera none (with a camera, 22 MB is "
                         "infeasible for the reduced search, and the phone-photo plan's rank-160 FiPS group "
                         "cannot be reconstructed from 8 calibration images)")
    ap.add_argument("--model", default=os.path.join(ROOT, "data/dinov2_s.fips"))
    ap.add_argument("--fips-plan", default=os.path.join(rel, "fips-plan"))
    ap.add_argument("--fips-run", default=os.path.join(rel, "fips-run"))
    ap.add_argument("--fipsd", default=os.path.join(rel, "fipsd"))
    ap.add_argument("--qemu")
    ap.add_argument("--aarch64-fips-run")
    ap.add_argument("--aarch64-budgets", default="22:640x480:256KiB:2:none")
    a = ap.parse_args()
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        files = make_inputs(tmp)
        sizes = {n: os.path.getsize(f) for n, f in files.items()}
        print(f"check_plan_memory: inputs {sizes}")
        run_base = peak_rss([a.fips_run, "--help"])[3]
        fipsd_base = peak_rss([a.fipsd, "--help"])[3]
        models, reserves = {}, {}
        for spec in a.budgets.split(","):
            b, *lim = spec.split(":")
            b = int(b)
            extra = (["--max-pixels", lim[0], "--max-input-bytes", lim[1], "--max-connections", lim[2]] if lim else [])
            extra += ["--camera", lim[3]] if len(lim) > 3 else []
            models[spec] = os.path.join(tmp, f"plan{spec.replace(':', '_')}.fips")
            reserves[spec], camera = plan(a, b, extra, models[spec])
            rc, out, err, rss = peak_rss([a.fips_run, "--model", models[spec], "--threads", "2", *files.values()])
            done, refused = check_run_output(f"{spec} MB fips-run", rc, out, err, files, problems)
            print(f"check_plan_memory: {spec} MB, fips-run: peak RSS {rss} - baseline {run_base} = {rss - run_base} "
                  f"(budget {b * 10**6}); classified {done}; refused {refused}")
            if rss - run_base > b * 10**6:
                problems.append(f"{spec} MB fips-run: peak RSS {rss} - baseline {run_base} over the budget")
            for l in err.splitlines():
                if "note:" in l or "warning:" in l:
                    problems.append(f"{spec} MB fips-run: the planned model should need no note: {l}")
            check_fipsd(a, models[spec], spec, files, tmp, fipsd_base, problems)
            if camera != "none":
                check_camera(a, models[spec], spec, camera, files, tmp, fipsd_base, problems)
        if a.qemu and a.aarch64_fips_run:
            # Under qemu the process's RSS also holds qemu's cache of translated code, which grows with
            # the code run (about 6 MB for a forward pass), so the --help baseline does not cover it: the
            # check is that the inputs add at most the plan's input reserve over the same run on the good
            # photo alone; the total beside the budget is printed as a proxy.
            base = peak_rss([a.qemu, a.aarch64_fips_run, "--help"])[3]
            for spec in a.aarch64_budgets.split(","):
                b = int(spec.split(":")[0])
                cmd = [a.qemu, a.aarch64_fips_run, "--model", models[spec], "--threads", "1"]
                good = peak_rss(cmd + [files["good.jpg"]])[3]
                rc, out, err, rss = peak_rss(cmd + list(files.values()))
                done, refused = check_run_output(f"{spec} aarch64 fips-run", rc, out, err, files, problems)
                print(f"check_plan_memory: {spec} MB, aarch64 fips-run under qemu: peak RSS {rss}, {rss - good} over the "
                      f"good photo alone (input reserve {reserves[spec]}); {rss - base} over --help (budget "
                      f"{b * 10**6}, a proxy); classified {done}; refused {refused}")
                if rss - good > reserves[spec]:
                    problems.append(f"{spec} aarch64 fips-run: the inputs took {rss - good} bytes, over the reserve")
    for p in problems:
        print("check_plan_memory: FAIL: " + p, file=sys.stderr)
    if problems:
        sys.exit(1)
    print("check_plan_memory: ok")


if __name__ == "__main__":
    main()
