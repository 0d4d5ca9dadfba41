"""fipsd as a systemd service: the notify protocol, logrotate's SIGUSR1, and the shipped unit."""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

from .common import ARGS, ROOT, Daemon, check

UNIT = os.path.join(ROOT, "boards/fipsd.service")


class NotifySocket:
    """The datagram socket systemd listens on for a Type=notify service ($NOTIFY_SOCKET)."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.messages = []

    def wait(self, key, timeout, daemon):
        """Reads datagrams until one has the line `key` (e.g. "READY=1"); returns its fields."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            self.s.settimeout(0.1)
            try:
                msg = self.s.recv(4096).decode()
            except socket.timeout:
                check(daemon.p.poll() is None, f"fipsd exited ({daemon.p.returncode}) waiting for {key}; log:\n{daemon.log()}")
                continue
            self.messages.append(msg)
            if key in msg.split("\n"):
                return dict(line.split("=", 1) for line in msg.split("\n") if "=" in line)
        raise AssertionError(f"no {key} within {timeout} s; got {self.messages}; log:\n{daemon.log()}")

    def count(self, key, seconds):
        n, t0 = 0, time.time()
        while time.time() - t0 < seconds:
            self.s.settimeout(0.05)
            try:
                if key in self.s.recv(4096).decode().split("\n"):
                    n += 1
            except socket.timeout:
                pass
        return n


def test_service(work):
    """READY=1 only when /healthz answers, WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1 then
    READY=1 around SIGHUP, STOPPING=1 on SIGTERM; SIGUSR1 reopens the --output file after a rotation."""
    ns = NotifySocket(os.path.join(work, "notify.sock"))
    results = os.path.join(work, "results.jsonl")
    inbox = os.path.join(work, "inbox")
    os.makedirs(inbox)
    env = {"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000", "WATCHDOG_PID": ""}
    d = Daemon(work, "--model", ARGS.tiny, "--listen", "0", "--watch", inbox, "--output", results,
               "--quiet", env=env, wait_listen=False)
    ready = ns.wait("READY=1", 60, d)
    check("STATUS" in ready and "serving" in ready["STATUS"], f"READY=1 without a STATUS naming what is served: {ready}")
    d.port = d.wait_log_port()
    st, _ = d.request("GET", "/healthz")
    check(st == 200, f"/healthz answered {st} after READY=1")
    pings = ns.count("WATCHDOG=1", 2.0)
    check(4 <= pings <= 14, f"{pings} WATCHDOG=1 in 2 s with WATCHDOG_USEC=400000 (expected about 10, one per 0.2 s)")
    d.p.send_signal(signal.SIGHUP)
    reloading = ns.wait("RELOADING=1", 30, d)
    check(int(reloading.get("MONOTONIC_USEC", "0")) > 0, f"RELOADING=1 without MONOTONIC_USEC: {reloading}")
    ns.wait("READY=1", 60, d)
    # logrotate: move the file away, SIGUSR1, and the next result goes to a new file at the path.
    # (copyfile, not copy: copy's chmod after the write would race fipsd moving the file to done/.)
    shutil.copyfile(os.path.join(ARGS.photos, sorted(os.listdir(ARGS.photos))[0]), os.path.join(inbox, "a.png"))
    d.wait_for(lambda: os.path.exists(results) and os.path.getsize(results) > 0, 60, "the first result line")
    os.rename(results, results + ".1")
    d.p.send_signal(signal.SIGUSR1)
    d.wait_for(lambda: "reopened on SIGUSR1" in d.log(), 30, "the reopen line")
    shutil.copyfile(os.path.join(ARGS.photos, sorted(os.listdir(ARGS.photos))[1]), os.path.join(inbox, "b.png"))
    d.wait_for(lambda: os.path.exists(results) and os.path.getsize(results) > 0, 60, "a result in the reopened file")
    check(open(results + ".1").read().count("\n") == 1, "the rotated file got more than its one line")
    d.p.send_signal(signal.SIGTERM)
    ns.wait("STOPPING=1", 30, d)
    d.stop()
    # Without $NOTIFY_SOCKET nothing is sent and nothing is logged about it.
    check("NOTIFY_SOCKET" not in d.log(), f"notify errors logged: {d.log()}")
    return (f"READY=1 with /healthz up, {pings} watchdog pings in 2 s (WATCHDOG_USEC=0.4 s), RELOADING=1/READY=1 "
            "around SIGHUP, STOPPING=1 on SIGTERM; SIGUSR1 reopened --output after a rotation")


def test_unit(work):
    """boards/fipsd.service: no directive systemd does not know, and an exposure of at most 2.0."""
    if ARGS.qemu:
        return "checked on the host run (the unit does not depend on the CPU)"
    if not shutil.which("systemd-analyze"):
        raise AssertionError("systemd-analyze is missing (Debian's systemd package; scripts/setup.sh installs it)")
    unit = os.path.join(work, "fipsd.service")
    # verify wants ExecStart's program to exist: point it at the one under test.
    with open(UNIT) as f:
        text = f.read()
    with open(unit, "w") as f:
        f.write(text.replace("/usr/local/bin/fipsd", os.path.abspath(ARGS.fipsd)))
    r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and not r.stderr.strip(), f"systemd-analyze verify: rc {r.returncode}: {r.stderr}")
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", unit], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for fipsd.service: ([0-9.]+) (\w+)", r.stdout)
    check(m is not None, f"no exposure level in systemd-analyze security's output:\n{r.stdout}{r.stderr}")
    score = float(m.group(1))
    check(score <= 2.0, f"systemd-analyze security rates the unit {score} {m.group(2)} (at most 2.0):\n{r.stdout}")
    for key in ("Type=notify", "WatchdogSec=", "LogsDirectory=fipsd", "RestartPreventExitStatus=2"):
        check(key in text, f"the unit lacks {key}")
    return f"systemd-analyze verify clean; security exposure {score} {m.group(2)} (target at most 2.0)"
