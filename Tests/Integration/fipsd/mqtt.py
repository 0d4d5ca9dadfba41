"""Results to an MQTT broker by composition: fipsd ... | mosquitto_pub -l, against a real mosquitto on loopback."""
import json
import os
import shutil
import socket
import subprocess
import threading
import time

from .common import ARGS, ROOT, check, cmd


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Subscriber:
    """mosquitto_sub -v on fips/#: collects (topic, payload, arrival time) in a thread."""

    def __init__(self, port):
        self.p = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "fips/#", "-v", "-q", "1"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.got = []
        self.t = threading.Thread(target=self.read, daemon=True)
        self.t.start()

    def read(self):
        for line in self.p.stdout:
            topic, _, payload = line.decode().rstrip("\n").partition(" ")
            self.got.append((topic, payload, time.time()))

    def on(self, topic):
        return [(p, t) for tp, p, t in self.got if tp == topic]


def test_mqtt(work):
    for tool in ("mosquitto", "mosquitto_pub", "mosquitto_sub"):
        check(shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}"),
              f"{tool} is missing (Debian's mosquitto and mosquitto-clients; scripts/setup.sh installs them)")
    port = free_port()
    conf = os.path.join(work, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker_bin = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([broker_bin, "-c", conf], stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "broker.log"), "wb"))
    sub = None
    try:
        # The broker is up once its port accepts a connection; a subscriber started before that exits.
        t0 = time.time()
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                check(time.time() - t0 < 30 and broker.poll() is None,
                      f"the broker did not listen on {port} within 30 s: {open(os.path.join(work, 'broker.log')).read()}")
                time.sleep(0.05)
        sub = Subscriber(port)
        # The subscriber is ready once it sees a probe (mosquitto_sub has no other readiness signal).
        t0 = time.time()
        while not sub.on("fips/probe"):
            if sub.p.poll() is not None:
                raise AssertionError(f"mosquitto_sub exited {sub.p.returncode}: {sub.p.stderr.read().decode()}")
            check(time.time() - t0 < 30 and broker.poll() is None, f"no probe through the broker within 30 s: {open(os.path.join(work, 'broker.log')).read()}")
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "fips/probe", "-m", "probe"],
                           capture_output=True, timeout=30)
            time.sleep(0.2)
        base = open(os.path.join(ROOT, "Tests/Integration/fipsd/base.jpg"), "rb").read()
        bad = base[:len(base) // 2] + b"\xff\xd9"
        # 1. A stream of N frames (every tenth broken): N result lines published, N received.
        n = 200
        frames = [bad if i % 10 == 9 else base for i in range(n)]
        fipsd = subprocess.Popen(cmd(ARGS.fipsd, "--model", ARGS.tiny, "--stdin", "--stdin-no-drop", "--quiet"),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        pub = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "fips/cam1", "-l", "-q", "1"],
                               stdin=fipsd.stdout, stderr=subprocess.PIPE)
        fipsd.stdout.close()
        fipsd.stdin.write(b"".join(frames))
        fipsd.stdin.close()
        check(fipsd.wait(timeout=600) == 1, f"fipsd exited {fipsd.returncode} (1 expected: some frames were broken)")
        _, perr = pub.communicate(timeout=120)
        check(pub.returncode == 0, f"mosquitto_pub exited {pub.returncode}: {perr.decode()}")
        t0 = time.time()
        while len(sub.on("fips/cam1")) < n and time.time() - t0 < 60:
            time.sleep(0.05)
        got = [json.loads(p) for p, _ in sub.on("fips/cam1")]
        check(len(got) == n, f"{n} results published, {len(got)} received")
        check([g["frame"] for g in got] == list(range(1, n + 1)), "results out of order or missing")
        errors = sum(1 for g in got if "error" in g)
        check(errors == n // 10, f"{errors} error lines, expected {n // 10}")
        # 2. Live: each result reaches the subscriber before the next frame is sent (one flushed
        # line per result, no buffering between fipsd and the broker).
        fipsd = subprocess.Popen(cmd(ARGS.fipsd, "--model", ARGS.tiny, "--stdin", "--quiet"),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        pub = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "fips/live", "-l"],
                               stdin=fipsd.stdout, stderr=subprocess.DEVNULL)
        fipsd.stdout.close()
        lags = []
        for i in range(5):
            sent = time.time()
            fipsd.stdin.write(base)
            fipsd.stdin.flush()
            t0 = time.time()
            while len(sub.on("fips/live")) < i + 1:
                check(time.time() - t0 < 60, f"live frame {i + 1}: no result within 60 s of sending it")
                time.sleep(0.01)
            lags.append(sub.on("fips/live")[i][1] - sent)
        fipsd.stdin.close()
        fipsd.wait(timeout=120)
        pub.wait(timeout=60)
    finally:
        if sub:
            sub.p.terminate()
        broker.terminate()
        broker.wait(timeout=30)
    return (f"{n} results (with {errors} error lines) through fipsd | mosquitto_pub -l to a mosquitto broker: "
            f"{len(got)} received in order; live frames published {max(lags) * 1000:.0f} ms after sending at most")
