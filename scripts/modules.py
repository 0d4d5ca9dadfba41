#!/usr/bin/env python3
"""The module graph, read from Package.swift (`swift package dump-package`).

  scripts/modules.py cross-build   the device modules in dependency order, for ./boards/build:
                                   "c NAME PATH", "swift NAME PATH DEP,DEP", "program NAME PATH SYMBOL"
  scripts/modules.py check         every `import` of a package module is a declared dependency,
                                   no device module imports a host module or Foundation/Dispatch,
                                   the cross build compiles exactly the device library modules,
                                   and docs/ARCHITECTURE.md draws the current graph
  scripts/modules.py graph         the module graph as a Mermaid diagram (docs/ARCHITECTURE.md)

The line between device and host is the folder: Sources/Device/ or Sources/Host/ (Package.swift);
the tests mirror it: Tests/Device/ depends on no host module, Tests/Host/ and Tests/Support/ may;
Benchmarks/ is host code.
One list, read by SwiftPM and by the cross build, so the two cannot drift.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Modules of the toolchain or the platform: never a dependency in Package.swift.
SYSTEM = {"Swift", "Glibc", "Darwin", "Foundation", "FoundationEssentials", "Dispatch", "XCTest",
          "_Concurrency", "Synchronization", "ArgumentParser"}
# What device code may never import: it must build as Embedded Swift, with no Foundation.
HOST_ONLY_SYSTEM = {"Foundation", "FoundationEssentials", "Dispatch", "ArgumentParser", "XCTest"}
IMPORT = re.compile(r"^\s*(?:@\w+\s+)*(?:public\s+|internal\s+|package\s+)?import\s+(?:struct\s+|func\s+|enum\s+)?([A-Za-z_]\w*)",
                    re.M)


def load_targets():
    out = subprocess.run(["swift", "package", "dump-package", "--package-path", ROOT],
                         check=True, capture_output=True, text=True).stdout
    targets = {}
    for t in json.loads(out)["targets"]:
        deps = []
        for d in t["dependencies"]:
            if "byName" in d:
                deps.append(d["byName"][0])
            elif "target" in d:
                deps.append(d["target"][0])
            elif "product" in d:
                deps.append(d["product"][0])
        path = t.get("path") or ("Tests/" if t["type"] == "test" else "Sources/") + t["name"]
        targets[t["name"]] = {"name": t["name"], "type": t["type"], "path": path, "deps": deps}
    return targets


def side(t):
    if t["path"].startswith("Sources/Device/"):
        return "device"
    if t["path"].startswith("Sources/Host/"):
        return "host"
    # Benchmarks/fips-bench measures device code from the host, with host helpers.
    if t["path"].startswith("Benchmarks/"):
        return "host"
    # Tests run on the host (XCTest, Foundation), but Tests/Device/ tests only device modules.
    if t["path"].startswith("Tests/Device/"):
        return "device-test"
    if t["path"].startswith("Tests/"):
        return "test"
    return "other"


def files(t, ext):
    out = []
    for dirpath, _, names in os.walk(os.path.join(ROOT, t["path"])):
        out += [os.path.join(dirpath, n) for n in names if n.endswith(ext)]
    return sorted(out)


def is_c(t):
    return t["type"] == "system-target" or (files(t, ".c") and not files(t, ".swift")) or (
        not files(t, ".swift") and os.path.isdir(os.path.join(ROOT, t["path"], "include")))


def topo(names, targets):
    order, seen = [], set()

    def visit(n, stack):
        if n in seen:
            return
        if n in stack:
            sys.exit(f"modules.py: dependency cycle through {n}")
        for d in targets[n]["deps"]:
            if d in names:
                visit(d, stack | {n})
        seen.add(n)
        order.append(n)

    for n in sorted(names):
        visit(n, set())
    return order


def cross_build(targets):
    dev = {n for n, t in targets.items() if side(t) == "device"}
    lines = []
    for n in topo(dev, targets):
        t = targets[n]
        if t["type"] == "executable":
            lines.append(f"program {n} {t['path']} {n.replace('-', '_')}_entry")
        elif is_c(t):
            lines.append(f"c {n} {t['path']}")
        else:
            lines.append(f"swift {n} {t['path']} {','.join(t['deps'])}")
    return lines


def check(targets):
    errors = []
    for n, t in sorted(targets.items()):
        if t["type"] == "system-target" or is_c(t):
            continue
        s = side(t)
        if s == "other":
            errors.append(f"{n}: {t['path']} is under none of Sources/Device/, Sources/Host/, Tests/, Benchmarks/")
        for dep in t["deps"]:
            if dep in targets and s in ("device", "device-test") and side(targets[dep]) == "host":
                errors.append(f"{n} ({s}) depends on {dep} (host)")
        for f in files(t, ".swift"):
            rel = os.path.relpath(f, ROOT)
            for m in set(IMPORT.findall(open(f, encoding="utf-8").read())):
                if s == "device" and m in HOST_ONLY_SYSTEM:
                    errors.append(f"{rel}: device code imports {m}")
                elif m in SYSTEM:
                    continue
                elif m not in targets:
                    errors.append(f"{rel}: imports {m}, which is not a module of this package")
                elif m not in t["deps"]:
                    errors.append(f"{rel}: imports {m}, which {n} does not declare in Package.swift")
                elif s == "device" and side(targets[m]) == "host":
                    errors.append(f"{rel}: device code imports the host module {m}")
    # The cross build compiles what boards/build reads from this script; compare it with what the
    # device sources are, so a module added under Sources/Device/ is built for the boards too.
    built = {line.split()[1] for line in cross_build(targets)}
    on_disk = {d for d in os.listdir(os.path.join(ROOT, "Sources/Device"))}
    for d in sorted(on_disk - built):
        errors.append(f"Sources/Device/{d} is not a target in Package.swift, so the cross build skips it")
    return errors


def graph(targets):
    """Mermaid flowchart of the package's modules: the transitive reduction of the declared
    dependencies (an arrow that another path already implies is left out, so the drawing
    stays readable), device and host in their own boxes."""
    shown = {n for n, t in targets.items() if side(t) in ("device", "host")}
    deps = {n: [d for d in targets[n]["deps"] if d in shown] for n in shown}
    reach = {}

    def reachable(n):
        if n not in reach:
            reach[n] = set()
            for d in deps[n]:
                reach[n] |= {d} | reachable(d)
        return reach[n]

    def node(n):
        return n.replace("-", "_")

    lines = ["flowchart BT"]
    for s in ("device", "host"):
        lines.append(f"  subgraph {s}")
        lines += [f"    {node(n)}[{n}]" for n in sorted(shown) if side(targets[n]) == s]
        lines.append("  end")
    for n in sorted(shown):
        for d in sorted(deps[n]):
            if not any(d in reachable(o) for o in deps[n] if o != d):
                lines.append(f"  {node(n)} --> {node(d)}")
    return lines


def graph_in_docs_is_current(targets):
    """docs/ARCHITECTURE.md draws the graph `graph` prints, between its ```mermaid fences."""
    doc = os.path.join(ROOT, "docs/ARCHITECTURE.md")
    text = open(doc, encoding="utf-8").read() if os.path.exists(doc) else ""
    m = re.search(r"```mermaid\n(.*?)```", text, re.S)
    if not m:
        return ["docs/ARCHITECTURE.md has no ```mermaid module graph"]
    if m.group(1).strip().split("\n") != graph(targets):
        return ["docs/ARCHITECTURE.md's module graph differs from Package.swift: "
                "paste the output of `python3 scripts/modules.py graph` into it"]
    return []


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else "check"
    targets = load_targets()
    if cmd == "cross-build":
        print("\n".join(cross_build(targets)))
    elif cmd == "graph":
        print("\n".join(graph(targets)))
    elif cmd == "check":
        errors = check(targets) + graph_in_docs_is_current(targets)
        for e in errors:
            print("modules.py: " + e, file=sys.stderr)
        if errors:
            sys.exit(1)
        dev = sum(1 for t in targets.values() if side(t) == "device")
        host = sum(1 for t in targets.values() if side(t) == "host")
        print(f"modules.py: {dev} device and {host} host targets; imports match Package.swift; "
              f"the cross build compiles every device module")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
