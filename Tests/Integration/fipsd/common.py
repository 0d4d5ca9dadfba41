"""What every fipsd check uses: the parsed arguments, PASS/FAIL helpers, a running daemon."""
import argparse
import http.client
import json
import os
import signal
import subprocess
import time


# Tests/Integration/fipsd/common.py -> the repository root
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ARGS = argparse.Namespace()   # filled in by check_fipsd.py main() from the command line
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

    def __init__(self, work, *args, stdin=None, stdout_pipe=False, name="d", wait_listen=True, env=None):
        self.err_path = os.path.join(work, f"{name}.err")
        self.out_path = os.path.join(work, f"{name}.out")
        self.err = open(self.err_path, "wb")
        self.out = None if stdout_pipe else open(self.out_path, "wb")
        self.p = subprocess.Popen(cmd(ARGS.fipsd, *args), stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE if stdout_pipe else self.out, stderr=self.err,
                                  env=None if env is None else {**os.environ, **env})
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


def frame_errors_total(m):
    """Frames that could not be classified (every error_kind of the result lines)."""
    return sum(v for k, v in m.items() if k.startswith('fipsd_frame_errors_total{'))


def photos():
    return sorted(os.path.join(ARGS.photos, f) for f in os.listdir(ARGS.photos)
                  if f.lower().endswith((".png", ".jpg", ".jpeg")))
