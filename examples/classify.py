#!/usr/bin/env python3
"""examples/classify.py: the kit's runtime from Python through ctypes (include/fips.h).

    python3 examples/classify.py [--lib .build/release/libfips-c.so] MODEL.fips [--top-k K] [--embedding] IMAGE...

One JSON line per image, as fips-run prints it. The library comes from
`swift build -c release --product fips-c`. Bytes in memory work the same way:
Fips.run_encoded(open("cat.jpg", "rb").read()); a camera frame: Fips.run_rgb(...).
"""
import argparse
import ctypes
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FipsError(Exception):
    pass


class Fips:
    """One open model (a `fips_model *`); one per thread, as the header says."""

    def __init__(self, path, threads=0, lib=os.path.join(ROOT, ".build/release/libfips-c.so")):
        L = self.lib = ctypes.CDLL(lib)
        L.fips_open.restype = ctypes.c_void_p
        L.fips_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        for name in ("fips_num_classes", "fips_embedding_dim", "fips_input_size"):
            getattr(L, name).argtypes = [ctypes.c_void_p]
        L.fips_label.restype = L.fips_error.restype = ctypes.c_char_p
        L.fips_label.argtypes = [ctypes.c_void_p, ctypes.c_int]
        L.fips_error.argtypes = [ctypes.c_void_p]
        L.fips_run_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        L.fips_run_encoded.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        L.fips_run_rgb.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        L.fips_top_k.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_float)]
        L.fips_embedding.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int]
        L.fips_close.argtypes = [ctypes.c_void_p]
        err = ctypes.create_string_buffer(256)
        self.m = L.fips_open(path.encode(), threads, err, len(err))
        if not self.m:
            raise FipsError(err.value.decode())
        self.classes = L.fips_num_classes(self.m)
        self.dim = L.fips_embedding_dim(self.m)

    def _check(self, status):
        if status < 0:
            raise FipsError(self.lib.fips_error(self.m).decode())
        return status

    def run_file(self, path):
        self._check(self.lib.fips_run_file(self.m, path.encode()))

    def run_encoded(self, data):
        self._check(self.lib.fips_run_encoded(self.m, data, len(data)))

    def run_rgb(self, rgb, width, height):
        self._check(self.lib.fips_run_rgb(self.m, rgb, width, height, width * 3))

    def top_k(self, k):
        idx, score = (ctypes.c_int * k)(), (ctypes.c_float * k)()
        n = self._check(self.lib.fips_top_k(self.m, k, idx, score))
        return [(self.lib.fips_label(self.m, idx[i]).decode(), score[i]) for i in range(n)]

    def embedding(self):
        out = (ctypes.c_float * self.dim)()
        self._check(self.lib.fips_embedding(self.m, out, self.dim))
        return list(out)

    def close(self):
        if self.m:
            self.lib.fips_close(self.m)
            self.m = None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", default=os.path.join(ROOT, ".build/release/libfips-c.so"))
    ap.add_argument("model")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--embedding", action="store_true")
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()
    try:
        f = Fips(a.model, lib=a.lib)
    except FipsError as e:
        print(f"classify.py: {e}", file=sys.stderr)
        return 3
    failed = 0
    for path in a.images:
        try:
            f.run_file(path)
        except FipsError as e:
            print(f"classify.py: {e}", file=sys.stderr)
            failed = 1
            continue
        line = {"image": path}
        if a.embedding:
            line["embedding"] = f.embedding()
        if f.classes:
            line["top"] = [{"label": l, "score": s} for l, s in f.top_k(a.top_k)]
        print(json.dumps(line))
    f.close()
    return failed


if __name__ == "__main__":
    sys.exit(main())
