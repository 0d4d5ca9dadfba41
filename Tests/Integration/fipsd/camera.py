"""fipsd --camera against a UVC camera without hardware (uvc_camera.c, LD_PRELOAD into the host fipsd):
streamed MJPEG and YUYV frames classified as fips-run classifies the same picture, frames dropped
when the model is slower than the camera, a slow camera waited on without spinning, recovery after
an unplug, RSS flat over 5,000 frames."""
import json
import os
import subprocess
import time

from PIL import Image

from .common import ARGS, check, cmd, Daemon

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "uvc_camera.c")
DEVICE = "/dev/fips-test-video0"   # no such file: only the shim answers for it


def build_shim(work):
    so = os.path.join(work, "uvc_camera.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", so, SHIM, "-ldl", "-lpthread"],
                   check=True)
    return so


def camera(work, so, name, model, env, *extra):
    """A fipsd reading the emulated camera; its counters land in <name>.stats."""
    stats = os.path.join(work, f"{name}.stats")
    e = {"LD_PRELOAD": so, "FIPS_UVC_DEVICE": DEVICE, "FIPS_UVC_STATS": stats, **{k: str(v) for k, v in env.items()}}
    d = Daemon(work, "--model", model, "--camera", DEVICE, "--listen", 0, "--top-k", 5, "--embedding", *extra,
               name=name, env=e)
    d.stats_path = stats
    return d


def stats(d):
    try:
        with open(d.stats_path) as f:
            return {k: int(v) for k, v in (line.split() for line in f if line.strip())}
    except FileNotFoundError:
        return {}


def camera_lines(d):
    return [j for j in d.output_lines() if j.get("source") == "camera"]


def reference(model, image):
    """fips-run's top-5 and embedding for one picture: what every frame of it must give."""
    r = subprocess.run(cmd(ARGS.fips_run, "--model", model, "--top-k", 5, "--embedding", image), capture_output=True,
                       timeout=600)
    check(r.returncode == 0, f"fips-run {image}: {r.stderr.decode()}")
    j = json.loads(r.stdout.decode().splitlines()[0])
    return j["top"], j["embedding"]


def check_same(lines, ref, what):
    top, emb = ref
    for j in lines:
        check(j.get("top") == top, f"{what} frame {j.get('frame')}: {j.get('top')} != fips-run {top}")
        check(j.get("embedding") == emb, f"{what} frame {j.get('frame')}: the embedding differs from fips-run's")


def to_yuyv(rgb):
    """BT.601 limited range 4:2:2, each pair's chroma the mean of its two pixels (as a UVC camera sends it)."""
    w, h = rgb.size
    px = rgb.load()
    out = bytearray()
    for y in range(h):
        for x in range(0, w, 2):
            ys, us, vs = [], 0, 0
            for r, g, b in (px[x, y], px[x + 1, y]):
                ys.append(max(16, min(235, round(16 + 0.257 * r + 0.504 * g + 0.098 * b))))
                us += -0.148 * r - 0.291 * g + 0.439 * b
                vs += 0.439 * r - 0.368 * g - 0.071 * b
            u = max(16, min(240, round(128 + us / 2)))
            v = max(16, min(240, round(128 + vs / 2)))
            out += bytes((ys[0], u, ys[1], v))
    return bytes(out)


def from_yuyv(data, w, h):
    """The picture fipsd sees: CameraFrame.fromYUYV's integer BT.601 conversion, step for step."""
    img = Image.new("RGB", (w, h))
    px = img.load()
    clamp = lambda v: max(0, min(255, v))  # noqa: E731
    for y in range(h):
        for x in range(0, w, 2):
            q = data[(y * w + x) * 2:(y * w + x) * 2 + 4]
            d0, e0 = q[1] - 128, q[3] - 128
            r_add, g_add, b_add = 409 * e0 + 128, -100 * d0 - 208 * e0 + 128, 516 * d0 + 128
            for k, luma in enumerate((q[0], q[2])):
                c = 298 * (luma - 16)
                px[x + k, y] = (clamp((c + r_add) >> 8), clamp((c + g_add) >> 8), clamp((c + b_add) >> 8))
    return img


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def part_mjpeg(work, so, jpeg):
    """The real model, slower than a 30 fps camera: every frame classified as fips-run classifies the JPEG,
    the rest dropped and counted; every frame the camera made is accounted for."""
    ref = reference(ARGS.model, jpeg)
    d = camera(work, so, "mjpeg", ARGS.model, {"FIPS_UVC_MJPEG": jpeg, "FIPS_UVC_FPS": 30})
    d.wait_for(lambda: len(camera_lines(d)) >= 3, 600, "three classified camera frames")
    m = d.metrics()
    d.stop()
    lines = camera_lines(d)
    check_same(lines, ref, "MJPEG")
    s = stats(d)
    dropped = m['fipsd_frames_dropped_total{source="camera"}']
    classified = m['fipsd_frames_total{source="camera"}']
    check(dropped > 0, f"no frame dropped although the model took {lines[-1]['forward_ms']} ms a frame at 30 fps")
    # Between the /metrics read and the stop a few more frames may arrive; none may vanish unaccounted.
    accounted = len(lines) + dropped + s["driver_dropped"]
    check(s["produced"] - 12 <= accounted <= s["produced"],
          f"camera made {s['produced']} frames; {len(lines)} classified + {dropped:.0f} dropped by fipsd + "
          f"{s['driver_dropped']} with no buffer queued = {accounted:.0f}")
    return (f"MJPEG at 30 fps, {lines[-1]['forward_ms']:.0f} ms a forward pass: {len(lines)} frames equal to fips-run, "
            f"{dropped:.0f} dropped by fipsd, {s['driver_dropped']} in the driver, of {s['produced']} (classified {classified:.0f})")


def part_yuyv(work, so, photo):
    """A camera that offers only YUYV: fipsd asks for MJPEG, is answered YUYV, streams it; each frame equals
    fips-run on the picture fromYUYV makes of it. Asking for MJPEG only is refused by name."""
    w, h = 320, 240
    raw = to_yuyv(Image.open(photo).convert("RGB").resize((w, h), Image.BICUBIC))
    raw_path, png = os.path.join(work, "frame.yuyv"), os.path.join(work, "frame_as_fipsd_sees_it.png")
    with open(raw_path, "wb") as f:
        f.write(raw)
    from_yuyv(raw, w, h).save(png)
    ref = reference(ARGS.tiny, png)
    env = {"FIPS_UVC_YUYV": raw_path, "FIPS_UVC_SIZE": f"{w}x{h}", "FIPS_UVC_FPS": 60}
    d = camera(work, so, "yuyv", ARGS.tiny, env)
    d.wait_for(lambda: len(camera_lines(d)) >= 20, 120, "20 YUYV frames")
    d.stop()
    check(f"streaming YUYV {w}x{h}" in d.log(), f"no 'streaming YUYV {w}x{h}' line:\n{d.log()}")
    check_same(camera_lines(d), ref, "YUYV")
    only = camera(work, so, "yuyv_mjpeg", ARGS.tiny, env, "--camera-format", "mjpeg")
    only.wait_for(lambda: "offers no MJPEG format" in only.log(), 60, "the refused MJPEG request")
    check(only.request("GET", "/healthz")[0] == 200, "healthz while the camera's format is refused")
    only.stop()
    return f"YUYV-only camera negotiated from MJPEG, {len(camera_lines(d))} frames equal to fips-run; --camera-format mjpeg refused by name"


def part_slow(work, so, jpeg):
    """A 2 fps camera: every frame classified, none dropped, and fipsd sleeps between frames."""
    d = camera(work, so, "slow", ARGS.tiny, {"FIPS_UVC_MJPEG": jpeg, "FIPS_UVC_FPS": 2})
    d.wait_for(lambda: len(camera_lines(d)) >= 1, 120, "the first frame")
    n0, cpu0, t0 = len(camera_lines(d)), cpu_seconds(d.p.pid), time.time()
    time.sleep(4)
    n1, cpu1, t1 = len(camera_lines(d)), cpu_seconds(d.p.pid), time.time()
    m = d.metrics()
    d.stop()
    s = stats(d)
    rate = (n1 - n0) / (t1 - t0)
    check(1.2 <= rate <= 2.8, f"{n1 - n0} frames in {t1 - t0:.1f} s from a 2 fps camera")
    check(m['fipsd_frames_dropped_total{source="camera"}'] == 0 and s["driver_dropped"] == 0, "frames dropped at 2 fps")
    cpu = (cpu1 - cpu0) / (t1 - t0)
    check(cpu < 0.1, f"fipsd used {cpu:.2f} CPU seconds a second waiting on a 2 fps camera (spinning?)")
    return f"2 fps: {rate:.2f} frames/s classified, none dropped, {cpu * 100:.1f}% of a CPU"


def part_unplug(work, so, jpeg):
    """Unplugged after 60 frames, back 1.5 s later: the loss is logged and counted, HTTP keeps answering,
    the camera is reopened (after a refused attempt) and frames flow again."""
    env = {"FIPS_UVC_MJPEG": jpeg, "FIPS_UVC_FPS": 50, "FIPS_UVC_UNPLUG_AFTER": 60, "FIPS_UVC_REPLUG_MS": 1500}
    d = camera(work, so, "unplug", ARGS.tiny, env)
    d.wait_for(lambda: stats(d).get("unplugs", 0) == 1, 60, "the unplug")
    d.wait_for(lambda: "lost (" in d.log(), 30, "the lost-camera line")
    before = len(camera_lines(d))
    check(d.request("GET", "/healthz")[0] == 200, "healthz while unplugged")
    d.wait_for(lambda: stats(d).get("opens", 0) >= 2, 60, "the reopen")
    d.wait_for(lambda: len(camera_lines(d)) >= before + 20, 60, "20 frames after the replug")
    m = d.metrics()
    d.stop()
    lost_n, refused = m['fipsd_errors_total{kind="camera_lost"}'], m['fipsd_errors_total{kind="camera_open"}']
    check(lost_n == 1, f"camera_lost counted {lost_n:.0f} times, not once")
    check(refused >= 1, "no refused reopen while unplugged")
    check(d.log().count(f"camera {DEVICE}: streaming") >= 1, "no streaming line after the replug")
    lost = [l for l in d.log().splitlines() if "lost (" in l][0].split(DEVICE + ": ", 1)[-1]
    return f"unplug after 60 frames ('{lost}'), {refused:.0f} refused reopen(s), " \
        f"{len(camera_lines(d)) - before} frames after the replug"


def part_soak(work, so, jpeg, frames):
    """A 1000 fps camera into the tiny model, every 97th frame damaged: RSS after warm-up stays within 1 MB."""
    env = {"FIPS_UVC_MJPEG": jpeg, "FIPS_UVC_FPS": 1000, "FIPS_UVC_ERROR_EVERY": 97}
    d = camera(work, so, "soak", ARGS.tiny, env, "--output", os.path.join(work, "soak.jsonl"))
    classified = lambda: d.metrics()['fipsd_frames_total{source="camera"}']  # noqa: E731
    d.wait_for(lambda: classified() >= frames // 10, 600, f"{frames // 10} frames (warm-up)")
    r0 = d.rss()
    d.wait_for(lambda: classified() >= frames, 1200, f"{frames} frames")
    r1 = d.rss()
    m = d.metrics()
    d.stop()
    s = stats(d)
    check(r1 - r0 <= 1 << 20, f"RSS grew {(r1 - r0) / 1024:.0f} KiB from frame {frames // 10} to {frames}")
    check(m['fipsd_frames_dropped_total{source="camera"}'] >= s["produced"] // 97 - 1, "damaged frames not counted as dropped")
    n = m['fipsd_frames_total{source="camera"}']
    return f"{n:.0f} frames at up to 1000 fps: RSS {r0 / 1e6:.1f} -> {r1 / 1e6:.1f} MB"


def test_uvc(work):
    if ARGS.qemu:
        return "host only: LD_PRELOAD needs the dynamically linked host fipsd (the aarch64 programs are static)"
    so = build_shim(work)
    jpeg = os.path.join(work, "frame.jpg")   # what a UVC camera's MJPEG frame is: a baseline 640x480 JPEG
    Image.open(os.path.join(ARGS.photos, "chelsea.png")).convert("RGB").resize((640, 480), Image.BICUBIC) \
        .save(jpeg, quality=90)
    small = os.path.join(work, "small.jpg")
    Image.open(jpeg).resize((160, 120), Image.BICUBIC).save(small, quality=90)
    parts = [part_mjpeg(work, so, jpeg), part_yuyv(work, so, os.path.join(ARGS.photos, "coffee.png")),
             part_slow(work, so, small), part_unplug(work, so, small), part_soak(work, so, small, ARGS.soak_frames)]
    return "; ".join(parts)
