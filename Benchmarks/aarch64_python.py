#!/usr/bin/env python3
"""An aarch64 Python with numpy and onnxruntime that runs under qemu-aarch64 on
this x86-64 host, so onnxruntime's aarch64 build can be counted instruction by
instruction like fips-run (Benchmarks/arm_vs_onnxruntime.py).

    python3 Benchmarks/aarch64_python.py [--check]     # prepare (once) and print the versions

Made once into data/aarch64_python/ (git-ignored, kept between runs; about
20 s afterwards, the import check under qemu):
  debs/           Debian's arm64 packages of python3.11 and the libraries it and
                  the two wheels load (apt-get download; the arm64 architecture
                  is added by scripts/setup.sh), unpacked with dpkg -x into
  sysroot/        which qemu-aarch64 -L uses as the guest's /
  wheels/         numpy and onnxruntime aarch64 wheels (pip download), unzipped into
  site-packages/  on the guest's PYTHONPATH
No package is installed on the host and nothing runs as the host's python.

Versions: numpy 2.4.6; onnxruntime 1.19.2, not the host's 1.32.0, whose
aarch64 wheel dies of SIGSEGV at import under Debian 12's qemu-user 7.2,
while 1.19.2 imports and runs. The other wheels onnxruntime imports are
fetched unpinned (their newest), with --no-deps.

    import aarch64_python
    py = aarch64_python.prepare()
    subprocess.run(py.command("cortex-a72", ["-c", "import onnxruntime"]), env=py.env())
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import zipfile

import bench_common as bench

ROOT = bench.ROOT
HOME = os.path.join(ROOT, "data/aarch64_python")
NUMPY = "2.4.6"
ONNXRUNTIME = "1.19.2"
PYTHON_VERSION = "3.11"
# Debian 12 arm64 packages: the interpreter and standard library, and the
# shared libraries that they and the wheels' extension modules load (libc,
# libstdc++ and libgcc_s for onnxruntime, libffi for ctypes, libssl for
# hashlib, the compressors for zlib/bz2/lzma). libpython3.11-stdlib's
# libnsl2/libtirpc3/libdb5.3 (only _nis and dbm use them) are left out: they
# would pull in Kerberos, and nothing here imports those modules.
DEBS = ["libc6", "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
        "libexpat1", "zlib1g", "libssl3", "libbz2-1.0", "libcrypt1", "libffi8", "liblzma5",
        "libncursesw6", "libtinfo6", "libreadline8", "libsqlite3-0", "libuuid1",
        "libstdc++6", "libgcc-s1", "media-types"]
WHEELS = [f"numpy=={NUMPY}", f"onnxruntime=={ONNXRUNTIME}"]
# onnxruntime's wheel depends on these pure-Python or small packages at import
# (coloredlogs, flatbuffers, packaging, protobuf, sympy): fetched the same way,
# --no-deps keeps pip from choosing anything else.
WHEEL_DEPS = ["packaging", "protobuf", "flatbuffers", "coloredlogs", "humanfriendly", "sympy", "mpmath"]
CHECK = ("import sys, numpy, onnxruntime; "
         "print(sys.version.split()[0], numpy.__version__, onnxruntime.__version__)")


def sh(cmd, **kw):
    return bench.run(cmd, echo=bench.shown(cmd),
                     fail=lambda p: f"{cmd[0]} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}", **kw)


class Aarch64Python:
    def __init__(self, home=HOME):
        self.home = home
        self.sysroot = os.path.join(home, "sysroot")
        self.site = os.path.join(home, "site-packages")
        self.python = os.path.join(self.sysroot, "usr/bin/python3.11")

    def env(self, extra=None):
        """The host environment for qemu-aarch64: the guest inherits it, so
        PYTHONPATH names the unzipped wheels and nothing of the host's Python
        configuration leaks in."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        e.update({"PYTHONPATH": self.site, "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
                  "OMP_NUM_THREADS": "1"})
        e.update(extra or {})
        return e

    def command(self, cpu, args, plugin=None, plugin_args=()):
        """qemu-aarch64 -cpu CPU [-d plugin -plugin PLUGIN,ARGS] -L sysroot python3.11 ARGS."""
        cmd = ["qemu-aarch64", "-cpu", cpu, "-L", self.sysroot]
        if plugin:
            cmd += ["-d", "plugin", "-plugin", ",".join([plugin, *plugin_args])]
        return cmd + [self.python, *args]

    def versions(self, cpu="cortex-a72"):
        p = sh(self.command(cpu, ["-c", CHECK]), env=self.env())
        py, np, ort = p.stdout.split()
        return {"python": py, "numpy": np, "onnxruntime": ort}


def download_debs(debs):
    os.makedirs(debs, exist_ok=True)
    missing = [p for p in DEBS if not glob.glob(os.path.join(debs, f"{p}_*_arm64.deb"))
               and not glob.glob(os.path.join(debs, f"{p}_*_all.deb"))]
    if missing:
        # apt-get download writes into the current directory.
        sh(["apt-get", "download", *[f"{p}:arm64" if p != "media-types" else p for p in missing]], cwd=debs)


def download_wheels(wheels):
    os.makedirs(wheels, exist_ok=True)
    platform = ["--platform", "manylinux_2_28_aarch64", "--platform", "manylinux2014_aarch64",
                "--platform", "manylinux_2_17_aarch64", "--platform", "any"]
    for spec in WHEELS + WHEEL_DEPS:
        name = spec.split("==")[0]
        if glob.glob(os.path.join(wheels, f"{name}-*.whl")):
            continue
        sh([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", *platform,
            "--python-version", PYTHON_VERSION, "--implementation", "cp", spec, "-d", wheels])


def prepare(home=HOME, quiet=False):
    """Makes (or reuses) the sysroot and site-packages and returns an
    Aarch64Python whose imports have been checked under qemu."""
    py = Aarch64Python(home)
    stamp = os.path.join(home, "ready")
    if not os.path.exists(stamp):
        debs, wheels = os.path.join(home, "debs"), os.path.join(home, "wheels")
        download_debs(debs)
        download_wheels(wheels)
        # Unpack afresh into temporary folders and rename at the end, so an
        # interrupted run leaves no half-made sysroot behind.
        for d in [py.sysroot + ".tmp", py.site + ".tmp"]:
            shutil.rmtree(d, ignore_errors=True)
        for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
            sh(["dpkg", "-x", deb, py.sysroot + ".tmp"])
        for whl in sorted(glob.glob(os.path.join(wheels, "*.whl"))):
            with zipfile.ZipFile(whl) as z:
                z.extractall(py.site + ".tmp")
                # zipfile drops the mode bits; the bundled .so files need x.
                for info in z.infolist():
                    mode = info.external_attr >> 16
                    if mode:
                        os.chmod(os.path.join(py.site + ".tmp", info.filename), mode & 0o7777)
        for d in [py.sysroot, py.site]:
            shutil.rmtree(d, ignore_errors=True)
            os.rename(d + ".tmp", d)
        v = py.versions()
        with open(stamp, "w") as fh:
            fh.write(" ".join(f"{k}={x}" for k, x in v.items()) + "\n")
    py.stamp = open(stamp).read().split()
    return py


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="also import numpy and onnxruntime under qemu now")
    a = ap.parse_args()
    py = prepare()
    print(" ".join(py.stamp))
    if a.check:
        print(py.versions())


if __name__ == "__main__":
    main()
