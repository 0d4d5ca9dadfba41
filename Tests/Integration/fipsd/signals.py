"""Signals: SIGHUP reloads (a bad model keeps the old one), SIGTERM finishes the frame in flight."""
import json
import os
import shutil
import signal
import subprocess
import sys

from .common import ROOT, ARGS, check, Daemon, photos


def test_sighup(work):
    model = os.path.join(work, "model.fips")
    shutil.copy(ARGS.tiny, model)
    good = open(ARGS.tiny, "rb").read()
    img = open(os.path.join(ROOT, "Tests/Integration/fipsd/base.jpg"), "rb").read()
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
    checksum = info(m).split('checksum="')[1].split('"')[0]
    check(json.loads(r)["model"] == checksum != json.loads(r1)["model"],
          f"result lines name the model: {json.loads(r1)['model']} before, {json.loads(r)['model']} after ({info(m)})")
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
