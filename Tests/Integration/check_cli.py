#!/usr/bin/env python3
"""One grammar for the kit's five programs: runs every cell of the README's table
(program x --version, --opt=value, "--", exit statuses) and fails on any that differs.

    python3 Tests/Integration/check_cli.py [--bin .build/release] [--device-bin build/rpi5 --qemu qemu-aarch64-static]
                                           [--model data/fipsd_tiny.fips] [--table]

Exit statuses (ExitStatus, README "Exit status"): 0 ok, 1 some inputs failed,
2 a bad command line (usage, printed only for this), 3 a model or file that
cannot be used (or no plan fits).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICE = ("fips-run", "fips-profile", "fipsd")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build/release"))
    ap.add_argument("--device-bin", default="", help="run fips-run, fips-profile and fipsd from here (e.g. build/rpi5)")
    ap.add_argument("--qemu", default="")
    ap.add_argument("--model", default=os.path.join(ROOT, "data/fipsd_tiny.fips"))
    ap.add_argument("--table", action="store_true", help="print the README's table")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)   # the programs run in a scratch directory
    a.device_bin = os.path.abspath(a.device_bin) if a.device_bin else ""
    work = tempfile.mkdtemp(prefix="check_cli.")
    photo = os.path.join(work, "-dash.png")   # an argument that only "--" can pass
    shutil.copy(os.path.join(ROOT, "data/photos/chelsea.png"), photo)
    model = os.path.abspath(a.model)
    missing = os.path.join(work, "missing.fips")
    junk = os.path.join(work, "junk.png")
    with open(junk, "wb") as f:
        f.write(b"not an image")

    def run(prog, *args, stdin=None):
        device = prog in DEVICE and a.device_bin
        exe = os.path.join(a.device_bin if device else a.bin, prog)
        cmd = ([a.qemu] if device and a.qemu else []) + [exe] + list(args)
        with open(stdin, "rb") if stdin else open(os.devnull, "rb") as sin:
            r = subprocess.run(cmd, stdin=sin, capture_output=True, timeout=600, cwd=work)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    png = os.path.join(ROOT, "data/photos/chelsea.png")
    # program -> column -> (arguments, stdin, expected status, text the output must contain, what it shows)
    cells = {
        "fips": {
            "--opt=value": (["latency", model, "--board=rpi5"], None, 0, "ms", "fips latency M --board=rpi5"),
            "--": (["info", "--", model], None, 0, "format version", "fips info -- M"),
            "1": None,
            "2": (["info", "--frobnicate", model], None, 2, "Usage:", "unknown option: message and usage"),
            "3": (["info", missing], None, 3, "missing.fips", "a missing model: one line, no usage"),
        },
        "fips-plan": {
            "--opt=value": (["--model=" + missing, "--calib=fashion-mnist", "--board=rpi5", "--budget=26MB", "-o", "x.fips"],
                            None, 3, "missing.fips", "--model=M parsed: the missing file is named"),
            "--": None,
            "1": None,
            "2": (["--budget", "26MB", "--frobnicate"], None, 2, "Usage:", "unknown option"),
            "3": (["--model", missing, "--calib", "fashion-mnist", "--board", "rpi5", "--budget", "26MB", "-o", "x.fips"],
                  None, 3, "missing.fips", "a missing model"),
        },
        "fips-run": {
            "--opt=value": (["--model=" + model, "--top-k=2", png], None, 0, '"top"', "--model=M --top-k=2"),
            "--": (["--model", model, "--", "-dash.png"], None, 0, "-dash.png", "fips-run --model M -- -dash.png"),
            "1": (["--model", model, png, junk], None, 1, '"top"', "one bad image of two"),
            "2": (["--model", model, "--frobnicate", png], None, 2, "unknown option --frobnicate", "unknown option"),
            "3": (["--model", missing, png], None, 3, "missing.fips", "a missing model"),
        },
        "fips-profile": {
            "--opt=value": (["--name=bad/name"], None, 2, "'bad/name'", "--name=V parsed: the value is named"),
            "--": None,
            "1": None,
            "2": (["--frobnicate"], None, 2, "unknown option --frobnicate", "unknown option"),
            "3": (["--quick", "--functional-only", "--output", "/proc/no/such/x.json"], None, 3, "/proc/no", "an output it cannot write"),
        },
        "fipsd": {
            "--opt=value": (["--model=" + model, "--stdin", "--top-k=2"], png, 0, '"top"', "--model=M --top-k=2 < a PNG"),
            "--": None,
            "1": (["--model", model, "--stdin"], junk, 1, "failed", "bytes on stdin that are no image"),
            "2": (["--model", model, "--frobnicate"], None, 2, "unknown option --frobnicate", "unknown option"),
            "3": (["--model", missing, "--stdin"], None, 3, "missing.fips", "a missing model"),
        },
    }
    problems, table = [], {}
    for prog, cols in cells.items():
        row = {}
        code, out, err = run(prog, "--version")
        ok = code == 0 and out.startswith(f"{prog} ") and "revision" in out
        row["--version"] = out.strip().split(" (")[0] if ok else "FAILED"
        if not ok:
            problems.append(f"{prog} --version: exit {code}, {out!r} {err!r}")
        # Help is an answer, not an error: on stdout, exit 0, nothing on stderr (a subcommand's too).
        for args in [["--help"]] + ([["eval", "--help"], ["help", "latency"]] if prog == "fips" else []):
            code, out, err = run(prog, *args)
            if code != 0 or "USAGE" not in out or err.strip():
                problems.append(f"{prog} {' '.join(args)}: exit {code}, stderr {err[:200]!r}, USAGE on stdout: {'USAGE' in out}")
        for col, cell in cols.items():
            if cell is None:
                row[col] = "n/a"
                continue
            args, stdin, want, text, what = cell
            code, out, err = run(prog, *args, stdin=stdin)
            good = code == want and text in out + err
            if want == 3 and ("Usage:" in err or "USAGE" in err or "--help" in err):
                good = False   # a failure while running never prints usage
            row[col] = ("ok" if good else "FAILED") + f" ({what})"
            if not good:
                problems.append(f"{prog} {' '.join(args)}: exit {code} (expected {want}), wanted {text!r} in:\n{out[-600:]}{err[-600:]}")
        table[prog] = row
    # Option values refused before any work: exit 2, the option and the bad part named, nothing written.
    if not a.device_bin:
        refused = [
            ("fips-plan", ["--model", model, "--calib", "fashion-mnist", "--board", "rpi5", "--budget", "26MB",
                           "--finetune-loss", "features+bogus"], "--finetune-loss: unknown loss 'bogus'"),
            ("fips", ["finetune", "--model", model, "--teacher", model, "--data", "fashion-mnist", "--head", "bogus"],
             "--head: 'bogus' is neither 'student' nor 'teacher'"),
            ("fips", ["finetune", "--qat", "--model", model, "--teacher", model, "--data", "fashion-mnist", "--head", "teacher"],
             "--head teacher: a packed (--qat) student keeps its packed head"),
        ]
        for prog, args, want in refused:
            bad = args + ["-o", "bad_value.fips"]
            code, out, err = run(prog, *bad)
            if code != 2 or want not in err or os.path.exists(os.path.join(work, "bad_value.fips")):
                problems.append(f"{prog} {' '.join(bad)}: exit {code} (expected 2), wanted {want!r} in:\n{err[-600:]}")
    if a.table or problems:
        cols = ["--version", "--opt=value", "--", "1", "2", "3"]
        print("| program | " + " | ".join(c if c in ("--version", "--opt=value", "--") else f"exit {c}" for c in cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for prog, row in table.items():
            print(f"| `{prog}` | " + " | ".join(row.get(c, "") for c in cols) + " |")
    shutil.rmtree(work, ignore_errors=True)
    where = f" ({a.device_bin} under {a.qemu})" if a.device_bin else ""
    if problems:
        print("check_cli: FAILED" + where + ":\n" + "\n".join(problems))
        sys.exit(1)
    print(f"check_cli: ok{where}: --help, --version, --opt=value, -- and exit statuses 0/1/2/3 in every cell of the table")


if __name__ == "__main__":
    main()
