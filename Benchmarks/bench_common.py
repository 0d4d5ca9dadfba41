"""What the Python benchmarks share: the checkout, where its programs are, and running one.

    import bench_common as bench
    bench.run([bench.FIPS, "eval", ...], echo="fips eval ...", fail=lambda p: f"failed:\\n{p.stderr}")

`python3 Benchmarks/NAME.py` puts Benchmarks/ first on sys.path, so each script imports this.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The host programs: swift build -c release (FIPS_BIN=DIR: copies of them, so a long
# benchmark keeps its programs while the checkout rebuilds).
RELEASE = os.environ.get("FIPS_BIN") or os.path.join(ROOT, ".build/release")
FIPS = os.path.join(RELEASE, "fips")
FIPS_RUN = os.path.join(RELEASE, "fips-run")
FIPS_PLAN = os.path.join(RELEASE, "fips-plan")
FIPS_BENCH = os.path.join(RELEASE, "fips-bench")


def board_binary(board, name):
    """A program of a board build: ./boards/build BOARD --release writes build/BOARD/NAME."""
    return os.path.join(ROOT, "build", board, name)


def shown(cmd):
    """cmd as the benchmarks echo it: paths inside the checkout relative to it."""
    return " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd)


def run(cmd, echo=None, fail=None, capture=True, **kw):
    """Runs cmd in text mode, its output captured unless capture=False, and returns the
    CompletedProcess. Prints "$ ECHO" first when echo is given; exits with fail(p) when
    fail is given and cmd exits non-zero. Other keywords go to subprocess.run."""
    if echo is not None:
        print("$ " + echo, flush=True)
    p = subprocess.run(cmd, capture_output=capture, text=True, **kw)
    if fail is not None and p.returncode != 0:
        sys.exit(fail(p))
    return p
