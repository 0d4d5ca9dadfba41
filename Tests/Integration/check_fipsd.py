#!/usr/bin/env python3
"""End-to-end checks of the fipsd daemon (scripts/test.sh runs them on the
x86-64 build and on the static aarch64 build under qemu-aarch64-static).

    python3 Tests/Integration/check_fipsd.py --fipsd BIN --fips-run BIN --model HEAD.fips --tiny TINY.fips
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
  uvc       a UVC camera emulated by an LD_PRELOAD shim (fipsd/uvc_camera.c; host only):
            MJPEG and YUYV frames equal fips-run on the same picture, frames dropped
            when the model is slower than the camera, a 2 fps camera waited on
            without spinning, an unplug recovered, RSS flat over --soak-frames frames
  usage     bad arguments and bad models at start: exit 2 with a message naming
            the problem
  service   the systemd notify protocol (READY=1 once serving, WATCHDOG=1,
            RELOADING=1 around SIGHUP, STOPPING=1), SIGUSR1 reopens --output
  metrics   promtool check metrics on a live /metrics after errors and reloads;
            known series from 0, the JSON's error kinds, HTTP by handler and code,
            buckets around the measured forward time, build info, the model's checksum
  mqtt      fipsd --stdin | mosquitto_pub -l against a real mosquitto broker on
            loopback: N results published, N received in order, each live one
            before the next frame is sent
  inputs    multipart uploads (curl -F, a browser form) equal the raw body; a
            PNG on stdin is classified; non-images on stdin exit 1
  unit      boards/fipsd.service: systemd-analyze verify clean, security
            exposure at most 2.0 (host only: the unit does not depend on the CPU)
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

from fipsd.common import ARGS, FAILED, ROOT, RUNNING, say
from fipsd.camera import test_uvc
from fipsd.faults import test_camera, test_output, test_usage
from fipsd.frames import test_corrupt, test_labels, test_soak
from fipsd.inputs import test_inputs
from fipsd.metrics import test_metrics
from fipsd.mqtt import test_mqtt
from fipsd.network import test_http, test_loopback
from fipsd.service import test_service, test_unit
from fipsd.signals import test_sighup, test_sigterm


TESTS = [("usage", test_usage), ("labels", test_labels), ("corrupt", test_corrupt), ("soak", test_soak),
         ("loopback", test_loopback), ("sighup", test_sighup), ("sigterm", test_sigterm), ("http", test_http),
         ("output", test_output), ("camera", test_camera), ("uvc", test_uvc), ("service", test_service), ("metrics", test_metrics), ("mqtt", test_mqtt), ("inputs", test_inputs),
         ("unit", test_unit)]


def main():
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
    vars(ARGS).update(vars(ap.parse_args()))
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
