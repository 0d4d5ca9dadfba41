"""/metrics by the Prometheus conventions, linted by promtool on a live daemon after errors and reloads."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

from .common import ARGS, ROOT, Daemon, check, cmd


def test_metrics(work):
    promtool = shutil.which("promtool")
    check(promtool is not None, "promtool is missing (Debian's prometheus package; scripts/setup.sh installs it)")
    model = os.path.join(work, "model.fips")
    shutil.copy(ARGS.tiny, model)
    t_start = time.time()
    d = Daemon(work, "--model", model, "--listen", 0, name="metrics")
    # Before anything happened: every known series is there, at 0.
    m0 = d.metrics()
    for k in ('fipsd_frame_errors_total{kind="truncated"}', 'fipsd_errors_total{kind="camera_lost"}',
              'fipsd_http_requests_total{handler="/classify",code="422"}', 'fipsd_frames_total{source="camera"}',
              'fipsd_last_frame_timestamp_seconds{source="http"}'):
        check(m0.get(k) == 0, f"{k} is not there at 0 before the first event: {m0.get(k)}")
    img = open(os.path.join(ROOT, "Tests/Integration/fipsd/base.jpg"), "rb").read()
    st, good = d.request("POST", "/classify", img)
    check(st == 200, f"POST a JPEG: {st}")
    st, bad = d.request("POST", "/classify", img[: len(img) // 3])
    check(st == 422, f"POST a truncated JPEG: {st}")
    kind = json.loads(bad)["error_kind"]
    check(d.request("GET", "/nowhere")[0] == 404, "404")
    check(d.request("POST", "/healthz", b"x")[0] == 405, "405")
    # A failed and a good reload.
    with open(model + ".new", "wb") as f:
        f.write(b"not a model")
    os.rename(model + ".new", model)
    d.p.send_signal(signal.SIGHUP)
    d.wait_for(lambda: "model reload failed" in d.log(), 60, "the failed reload")
    shutil.copy(ARGS.tiny, model + ".new")
    os.rename(model + ".new", model)
    d.p.send_signal(signal.SIGHUP)
    d.wait_for(lambda: "model reloaded" in d.log(), 60, "the good reload")
    st, body = d.request("GET", "/metrics")
    check(st == 200, f"/metrics: {st}")
    text = body.decode()
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    check(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
          f"promtool check metrics: rc {r.returncode}: {(r.stdout + r.stderr).decode()}")
    m = d.metrics()
    d.stop()
    # The result line's error_kind is the metric's kind label.
    check(m[f'fipsd_frame_errors_total{{kind="{kind}"}}'] == 1, f"error_kind {kind} not counted under the same name")
    for handler, code, n in (("/classify", 200, 1), ("/classify", 422, 1), ("other", 404, 1), ("/healthz", 405, 1)):
        key = f'fipsd_http_requests_total{{handler="{handler}",code="{code}"}}'
        check(m.get(key) == n, f"{key} = {m.get(key)}, expected {n}")
    check(m['fipsd_errors_total{kind="model_reload"}'] == 1 and m['fipsd_model_reloads_total{result="ok"}'] == 1,
          "reloads counted")
    # Histogram buckets around this model's forward time: the observation is in a finite bucket.
    fwd = sorted((float(re.search(r'le="([^"]+)"', k).group(1)), v) for k, v in m.items()
                 if k.startswith("fipsd_forward_duration_seconds_bucket") and "+Inf" not in k)
    check(len(fwd) >= 8 and fwd[-1][1] == 1, f"the forward pass fell outside the finite buckets: {fwd}")
    # Build info as --version says it; start time; the model's checksum in the result line and the info.
    ver = subprocess.run(cmd(ARGS.fipsd, "--version"), capture_output=True, text=True, timeout=60).stdout
    rev = re.search(r"revision ([^,]+),", ver).group(1)
    check(f'revision="{rev}"' in text, f"fipsd_build_info lacks revision {rev}:\n{ver}")
    start = m["process_start_time_seconds"]
    check(abs(start - t_start) < 30, f"process_start_time_seconds {start} vs the test's start {t_start}")
    check(f'checksum="{json.loads(good)["model"]}"' in text, "fipsd_model_info's checksum is not the result line's model")
    for gone in ("bytes=", "loaded="):
        check(gone not in text, f"fipsd_model_info still has a {gone} label (a new series per reload)")
    series = sum(1 for l in text.splitlines() if l and not l.startswith("#"))
    return (f"promtool check metrics clean after a 422, 404, 405, a failed and a good reload ({series} series); "
            f"error kinds from 0 with the JSON's names; HTTP by handler and code; forward buckets "
            f"{fwd[0][0]:g}..{fwd[-1][0]:g} s around the measured pass; build info revision {rev}")
