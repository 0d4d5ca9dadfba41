#!/usr/bin/env python3
"""No Swift file over 400 lines, no function over 100 lines outside the kernels.

  python3 scripts/check_sizes.py [--list]

Files: Swift under Sources/, Tests/ and Benchmarks/. Functions: those, and C
under Sources/ except the integer GEMM kernels (Sources/Device/CFipsKernels: per-ISA kernels are
long by nature, one unrolled loop nest each). The exceptions are the items in
backquotes in the "Size exceptions" section of docs/ARCHITECTURE.md, each with
its reason there: `path` for a file, `path:function` for a function.
--list prints every file and function over half the limit, largest first.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE_LIMIT, FUNC_LIMIT = 400, 100
KERNELS = "Sources/Device/CFipsKernels/"
SWIFT_FUNC = re.compile(r"^\s*(?:@[\w()\"., ]+\s+)*(?:(?:public|private|fileprivate|internal|package|static|class|"
                        r"final|override|mutating|nonmutating|@inline\(\w+\)|@inlinable|@usableFromInline|"
                        r"@discardableResult)\s+)*(?:func\s+([^\s(<]+)|(init)[?!]?\s*[(<]|(deinit)\b|"
                        r"(?:var|let)\s+(\w+)\s*:[^=]*\{\s*$)")
C_FUNC = re.compile(r"^(?!static\s+const)(?:[A-Za-z_][\w\s\*]*?[\s\*])([A-Za-z_]\w*)\s*\([^;]*$")


def strip(line, in_block):
    """The line without comments and string contents; whether a /* */ comment is still open."""
    out, i, n = [], 0, len(line)
    while i < n:
        if in_block:
            j = line.find("*/", i)
            if j < 0:
                return "".join(out), True
            i, in_block = j + 2, False
        elif line.startswith("//", i):
            break
        elif line.startswith("/*", i):
            in_block, i = True, i + 2
        elif line[i] == '"':
            j = i + 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif line[i] == "'" and not line.endswith(".swift"):
            j = i + 1
            while j < n and line[j] != "'":
                j += 2 if line[j] == "\\" else 1
            i = j + 1
        else:
            out.append(line[i])
            i += 1
    return "".join(out), in_block


def functions(path, lines):
    """(name, first line, length) of every function whose body is a braced block."""
    is_c = path.endswith(".c")
    found, stack, depth, in_block, in_multi = [], [], 0, False, False
    for no, raw in enumerate(lines, 1):
        if raw.count('"""') % 2 == 1:  # Swift multi-line string: skip its lines
            in_multi = not in_multi
            continue
        if in_multi:
            continue
        code, in_block = strip(raw, in_block)
        m = (C_FUNC.match(code) if depth == 0 else None) if is_c else SWIFT_FUNC.match(code)
        if m:
            name = next(g for g in m.groups() if g)
            stack.append((name, no, depth))
        for ch in code:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                while stack and stack[-1][2] >= depth:
                    name, start, d = stack.pop()
                    if d == depth:
                        found.append((name, start, no - start + 1))
        # a declaration without a body (protocol requirement, prototype) never opened its block
        if stack and ";" in code and is_c and depth == stack[-1][2]:
            stack.pop()
    return found


def exceptions():
    doc = os.path.join(ROOT, "docs/ARCHITECTURE.md")
    if not os.path.exists(doc):
        return set()
    text = open(doc, encoding="utf-8").read()
    m = re.search(r"^## Size exceptions\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return set(re.findall(r"^\s*[-|]\s*`([^`]+)`", m.group(1), re.M)) if m else set()


def main():
    allowed, problems, report = exceptions(), [], []
    used = set()
    for top in ("Sources", "Tests", "Benchmarks"):
        for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
            for n in sorted(names):
                rel = os.path.relpath(os.path.join(dirpath, n), ROOT)
                if not (n.endswith(".swift") or (n.endswith(".c") and rel.startswith("Sources/"))):
                    continue
                if rel.startswith(KERNELS):
                    continue
                lines = open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace").read().split("\n")
                count = len(lines) - (1 if lines[-1] == "" else 0)
                report.append((count, rel))
                if count > FILE_LIMIT and n.endswith(".swift"):
                    if rel in allowed:
                        used.add(rel)
                    else:
                        problems.append(f"{rel}: {count} lines (limit {FILE_LIMIT})")
                for name, start, length in functions(rel, lines):
                    report.append((length, f"{rel}:{start} {name}"))
                    if length > FUNC_LIMIT:
                        key = f"{rel}:{name}"
                        if key in allowed:
                            used.add(key)
                        else:
                            problems.append(f"{rel}:{start}: function {name} is {length} lines (limit {FUNC_LIMIT})")
    if "--list" in sys.argv:
        for size, what in sorted(report, reverse=True):
            if size > FUNC_LIMIT // 2:
                print(f"{size:5d}  {what}")
    for stale in sorted(allowed - used):
        problems.append(f"docs/ARCHITECTURE.md names `{stale}` as a size exception, but it is within the limits "
                        f"(or gone): remove it from the list")
    for p in problems:
        print("check_sizes: " + p, file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"check_sizes: every Swift file within {FILE_LIMIT} lines and every function within {FUNC_LIMIT} "
          f"({len(used)} named exceptions)")


if __name__ == "__main__":
    main()
