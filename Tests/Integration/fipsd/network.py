"""Listening and HTTP: loopback-only binding, slow clients, malformed requests, connection limits."""
import os
import socket
import subprocess
import time

from .common import ROOT, ARGS, check, Daemon


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
    img = open(os.path.join(ROOT, "Tests/Integration/fipsd/base.jpg"), "rb").read()
    d = Daemon(work, "--model", ARGS.tiny, "--listen", 0, "--http-timeout", "700ms", "--max-body", 100000,
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
