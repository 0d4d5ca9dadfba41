"""Instruction counts of aarch64 programs under qemu-aarch64 through the TCG
plugins in Benchmarks/qemu/: the total (insn_count.c) and the total split by
function of a static program (insn_by_symbol.c).

    import qemu_counts
    n = qemu_counts.count(["qemu-aarch64", "-cpu", "cortex-a72"], [exe, ...])          # instructions
    per_function = qemu_counts.by_symbol("cortex-a72", exe, [args...])                  # {name: instructions}

Counts are per process: single-threaded guests only (the plugins' inline
adds are not atomic), so fips-run runs with --threads 1 and onnxruntime with
one intra-op thread.
"""
import os
import re
import struct
import subprocess

import bench_common as bench

ROOT = bench.ROOT
QEMU_DIR = os.path.join(ROOT, "Benchmarks/qemu")


def plugin(name, out_dir):
    """Benchmarks/qemu/NAME.c compiled into OUT_DIR/NAME.so (rebuilt when it or
    the ABI header it includes is newer)."""
    src, so = os.path.join(QEMU_DIR, name + ".c"), os.path.join(out_dir, name + ".so")
    newest = max(os.path.getmtime(src), os.path.getmtime(os.path.join(QEMU_DIR, "qemu_plugin_abi.h")))
    if not os.path.exists(so) or os.path.getmtime(so) < newest:
        os.makedirs(out_dir, exist_ok=True)
        _sh(["gcc", "-shared", "-fPIC", "-O2", "-o", so, src])
    return so


def _sh(cmd, **kw):
    # A program given inline (python -c SCRIPT) is echoed as <child>.
    return bench.run(cmd, echo=bench.shown(["<child>" if "\n" in c else c for c in cmd]),
                     fail=lambda p: f"{cmd[0]} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}", **kw)


def count(qemu, program, out_dir, env=None):
    """Runs `QEMU -d plugin -plugin insn_count.so PROGRAM...` (QEMU: the
    qemu-aarch64 command and its options) and returns (instructions, process)."""
    so = plugin("insn_count", out_dir)
    p = _sh([*qemu, "-d", "plugin", "-plugin", so, *program], env=env)
    return int(re.search(r"fips-insn-count: (\d+)", p.stderr + p.stdout).group(1)), p


def elf_entry(path):
    """e_entry of a 64-bit little-endian ELF file."""
    with open(path, "rb") as fh:
        head = fh.read(32)
    if head[:4] != b"\x7fELF" or head[4] != 2:
        raise ValueError(f"{path}: not a 64-bit ELF file")
    return struct.unpack_from("<Q", head, 24)[0]


def symbol_file(exe, path):
    """Writes PATH: "ADDRESS SIZE NAME" (hex) for every function symbol of EXE
    (nm -S --defined-only, text symbols). Symbols nm gives no size (hand-written
    assembly, some libc entry points) are given the distance to the next
    function, so their instructions are not lost to [unknown]."""
    out = subprocess.run(["nm", "-S", "--defined-only", exe], capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "tTwWi":
            syms.append([int(f[0], 16), int(f[1], 16), f[3]])
        elif len(f) == 3 and f[1] in "tTwWi":
            syms.append([int(f[0], 16), 0, f[2]])
    syms.sort()
    for i, s in enumerate(syms):
        if s[1] == 0:
            nxt = next((t[0] for t in syms[i + 1:] if t[0] > s[0]), None)
            s[1] = nxt - s[0] if nxt is not None else 0
    with open(path, "w") as fh:
        for a, size, name in syms:
            if size:
                fh.write(f"{a:x} {size:x} {name}\n")
    return path


def by_symbol(cpu, exe, args, out_dir, tag, symbols_from=None):
    """Runs EXE ARGS under qemu-aarch64 -cpu CPU with insn_by_symbol.so and
    returns ({symbol: instructions}, total). SYMBOLS_FROM: the unstripped ELF
    the symbols come from when EXE is stripped (boards/build keeps it as
    build/BOARD/obj/NAME.unstripped; strip leaves code and addresses alone,
    which the equal e_entry checks). TAG names the files it leaves in OUT_DIR."""
    so = plugin("insn_by_symbol", out_dir)
    symbols_from = symbols_from or exe
    if elf_entry(symbols_from) != elf_entry(exe):
        raise SystemExit(f"{symbols_from} is not the unstripped {exe}: their entry points differ")
    syms = symbol_file(symbols_from, os.path.join(out_dir, tag + ".syms"))
    counts = os.path.join(out_dir, f"{tag}.counts")
    _sh(["qemu-aarch64", "-cpu", cpu, "-d", "plugin", "-plugin",
         f"{so},symbols={syms},entry={elf_entry(exe):#x},out={counts}", exe, *args])
    return read_counts(counts)


def read_counts(path):
    per, total = {}, None
    with open(path) as fh:
        for line in fh:
            a, b = line.rstrip("\n").split(" ", 1)
            if a == "total":
                total = int(b)
            elif a not in ("base", "first_tb"):
                per[b] = per.get(b, 0) + int(a)
    return per, total
