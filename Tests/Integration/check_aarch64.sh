#!/usr/bin/env bash
# Tests/Integration/check_aarch64.sh [MODEL]   (default data/dinov2_s.fips)
#
# Cross-builds fips-run for the Raspberry Pi 5 (./boards/build rpi5 --release),
# runs it under qemu-aarch64-static on three photos, runs the x86-64 host build
# (swift build -c release --product fips-run) on the same photos, and checks
# that the two agree:
#   - the same `top` labels in the same order (when the model has a head),
#   - `cls_norm` within 1e-4 relative (when it has none),
#   - the --features-out .npy files (float32 [tokens, dim]) within 1e-3 max abs.
# Then runs the aarch64 binary on a 0-byte image next to a good one and checks
# that it reports the bad one on stderr, still classifies the good one, and
# exits non-zero. Exits non-zero with a message on the first failure.
#
# Environment (for testing the checker itself; the defaults are the real thing):
#   CHECK_BOARD=rpi5            board to cross-build and run
#   CHECK_BUILD_FLAGS=--release flags for ./boards/build
#   CHECK_SKIP_BUILD=1          use the existing binaries, build nothing
#   CHECK_ARM_BIN, CHECK_HOST_BIN   binaries to run instead of the built ones
#   CHECK_QEMU=qemu-aarch64-static  the emulator (empty: run the binary directly)
#   CHECK_KEEP=1                keep the work directory and print its path
#   CHECK_PHOTOS="a.png b.jpg"  the images to compare on (default: chelsea, coffee, astronaut)
#   CHECK_QEMU_CPU=cortex-a72   the CPU qemu emulates (default: qemu's, which has dotprod)
#   CHECK_EXACT=1               require bit-identical features and outputs (the
#                               integer runtime's contract) instead of 1e-3 / 1e-4
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

MODEL="${1:-data/dinov2_s.fips}"
BOARD="${CHECK_BOARD:-rpi5}"
BUILD_FLAGS="${CHECK_BUILD_FLAGS---release}"
QEMU="${CHECK_QEMU-qemu-aarch64-static}"
QEMU_ARGS=()
if [ -n "${CHECK_QEMU_CPU:-}" ]; then QEMU_ARGS=(-cpu "$CHECK_QEMU_CPU"); fi
EXACT="${CHECK_EXACT:-0}"
# shellcheck disable=SC2206
PHOTOS=(${CHECK_PHOTOS:-data/photos/chelsea.png data/photos/coffee.png data/photos/astronaut.png})

say() { printf 'check_aarch64: %s\n' "$*"; }
fail() { printf 'check_aarch64: FAIL: %s\n' "$*" >&2; exit 1; }

[ -f "$MODEL" ] || fail "model $MODEL not found (give a .fips path as the first argument; \`fips import\` makes one from data/vit_s_focus.onnx)"
for p in "${PHOTOS[@]}"; do [ -f "$p" ] || fail "$p not found; run scripts/setup.sh to fetch the photos"; done
if [ -n "$QEMU" ]; then
  command -v "$QEMU" >/dev/null || fail "$QEMU not found: apt-get install qemu-user-static"
fi
python3 -c 'import numpy' 2>/dev/null || fail "python3 with numpy is needed for the comparison: pip install numpy"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/check_aarch64.XXXXXX")"
if [ "${CHECK_KEEP:-0}" = 1 ]; then say "work directory: $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
mkdir -p "$WORK/arm" "$WORK/host"

# --- build ---
ARM_BIN="${CHECK_ARM_BIN:-build/$BOARD/fips-run}"
if [ "${CHECK_SKIP_BUILD:-0}" != 1 ] && [ -z "${CHECK_ARM_BIN:-}" ]; then
  say "cross-building: ./boards/build $BOARD $BUILD_FLAGS"
  # shellcheck disable=SC2086
  ./boards/build "$BOARD" $BUILD_FLAGS || fail "./boards/build $BOARD failed"
fi
[ -x "$ARM_BIN" ] || fail "$ARM_BIN does not exist (build it with ./boards/build $BOARD --release)"
if [ -n "${CHECK_HOST_BIN:-}" ]; then
  HOST_BIN="$CHECK_HOST_BIN"
else
  if [ "${CHECK_SKIP_BUILD:-0}" != 1 ]; then
    say "host build: swift build -c release --product fips-run"
    swift build -c release --product fips-run >/dev/null 2>"$WORK/host-build.log" \
      || { cat "$WORK/host-build.log" >&2; fail "host build failed"; }
  fi
  HOST_BIN="$(swift build -c release --show-bin-path)/fips-run"
fi
[ -x "$HOST_BIN" ] || fail "$HOST_BIN does not exist"


# run_prog SIDE: runs that side's fips-run on the photos; stdout/stderr/status
# land in $WORK/SIDE/.
run_prog() {
  local side="$1" rc=0 t0 t1
  local -a cmd
  if [ "$side" = arm ]; then
    if [ -n "$QEMU" ]; then cmd=("$QEMU" ${QEMU_ARGS[@]+"${QEMU_ARGS[@]}"} "$ARM_BIN"); else cmd=("$ARM_BIN"); fi
  else
    cmd=("$HOST_BIN")
  fi
  t0=$(date +%s)
  "${cmd[@]}" --model "$MODEL" --features-out "$WORK/$side/features" "${PHOTOS[@]}" \
    >"$WORK/$side/out.jsonl" 2>"$WORK/$side/err.txt" || rc=$?
  t1=$(date +%s)
  echo "$rc" >"$WORK/$side/status"
  if [ "$rc" != 0 ]; then
    cat "$WORK/$side/err.txt" >&2
    fail "$side run exited with status $rc: ${cmd[*]} --model $MODEL ..."
  fi
  say "$side: $(wc -l <"$WORK/$side/out.jsonl") result line(s) in $((t1 - t0))s"
}

say "running $ARM_BIN${QEMU:+ under $QEMU ${QEMU_ARGS[*]+"${QEMU_ARGS[*]}"}} on ${#PHOTOS[@]} photos"
run_prog arm
say "running $HOST_BIN on ${#PHOTOS[@]} photos"
run_prog host

say "comparing"
python3 - "$WORK" "$EXACT" "${PHOTOS[@]}" <<'PY' || fail "aarch64 and x86-64 results differ (see above)"
import json, os, sys
import numpy as np

work, exact, photos = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
score_tol, norm_tol, feat_tol = (0.0, 0.0, 0.0) if exact else (1e-3, 1e-4, 1e-3)
problems = []

def load(side):
    rows = {}
    with open(os.path.join(work, side, "out.jsonl")) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(f"{side}: line {n} is not JSON ({e}): {line[:120]}")
                continue
            if "image" not in r:
                problems.append(f"{side}: line {n} has no \"image\" key: {line[:120]}")
                continue
            rows[r["image"]] = r
    return rows

arm, host = load("arm"), load("host")

def stem(p):
    b = os.path.basename(p.rstrip("/"))
    return b.rsplit(".", 1)[0] if "." in b[1:] else b

worst_feat = 0.0
for p in photos:
    a, h = arm.get(p), host.get(p)
    if a is None or h is None:
        problems.append(f"{p}: no result line from {'aarch64' if a is None else 'x86-64'}")
        continue
    if ("top" in a) != ("top" in h):
        problems.append(f"{p}: one side has \"top\", the other not")
    if "top" in a and "top" in h:
        la = [t.get("label") for t in a["top"]]
        lh = [t.get("label") for t in h["top"]]
        if la != lh:
            problems.append(f"{p}: top labels differ\n    aarch64: {la}\n    x86-64:  {lh}")
        for ta, th in zip(a["top"], h["top"]):
            sa, sh = float(ta.get("score", 0)), float(th.get("score", 0))
            if abs(sa - sh) > score_tol * max(1.0, abs(sh)):
                problems.append(f"{p}: score of {ta.get('label')!r} differs: {sa} vs {sh}")
    if ("cls_norm" in a) != ("cls_norm" in h):
        problems.append(f"{p}: one side has \"cls_norm\", the other not")
    if "cls_norm" in a and "cls_norm" in h:
        ca, ch = float(a["cls_norm"]), float(h["cls_norm"])
        rel = abs(ca - ch) / max(abs(ch), 1e-12)
        if rel > norm_tol:
            problems.append(f"{p}: cls_norm differs: aarch64 {ca} vs x86-64 {ch} (relative {rel:.2e} > {norm_tol})")
    if "top" not in a and "cls_norm" not in a:
        problems.append(f"{p}: neither \"top\" nor \"cls_norm\" in the aarch64 line")
    fa = os.path.join(work, "arm", "features", stem(p) + ".npy")
    fh = os.path.join(work, "host", "features", stem(p) + ".npy")
    for f in (fa, fh):
        if not os.path.exists(f):
            problems.append(f"{p}: features file {os.path.relpath(f, work)} was not written")
    if os.path.exists(fa) and os.path.exists(fh):
        try:
            xa, xh = np.load(fa), np.load(fh)
        except Exception as e:
            problems.append(f"{p}: cannot read features: {e}")
            continue
        if xa.dtype != np.float32 or xh.dtype != np.float32:
            problems.append(f"{p}: features are {xa.dtype}/{xh.dtype}, expected float32")
        if xa.ndim != 2 or xa.shape != xh.shape:
            problems.append(f"{p}: feature shapes {xa.shape} (aarch64) and {xh.shape} (x86-64), expected equal [tokens, dim]")
            continue
        if not (np.isfinite(xa).all() and np.isfinite(xh).all()):
            problems.append(f"{p}: features contain NaN or Inf")
            continue
        d = float(np.max(np.abs(xa.astype(np.float64) - xh.astype(np.float64))))
        worst_feat = max(worst_feat, d)
        if d > feat_tol:
            problems.append(f"{p}: features differ by up to {d:.3g} (> {feat_tol})")
    what = f"top {[t.get('label') for t in a['top']][:3]}..." if "top" in a else f"cls_norm {a.get('cls_norm')}"
    print(f"  {os.path.basename(p)}: {what}, ms aarch64(qemu) {a.get('ms')} / x86-64 {h.get('ms')}")

print(f"  max |features aarch64 - x86-64| = {worst_feat:.3g}")
for p in problems:
    print("  MISMATCH: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY

# --- a bad input among good ones ---
say "bad input: a 0-byte image next to a good one"
: >"$WORK/empty.png"
GOOD="${PHOTOS[0]}"
rc=0
${QEMU:+"$QEMU"} ${QEMU_ARGS[@]+"${QEMU_ARGS[@]}"} "$ARM_BIN" --model "$MODEL" "$WORK/empty.png" "$GOOD" \
  >"$WORK/bad.out" 2>"$WORK/bad.err" || rc=$?
[ "$rc" != 0 ] || fail "fips-run exited 0 although $WORK/empty.png is a 0-byte image"
grep -q "empty.png" "$WORK/bad.err" || { cat "$WORK/bad.err" >&2; fail "stderr does not name the bad file (empty.png)"; }
# One error line; an unplanned model also gets fips-run's note that it records no input limits.
errors=$(grep -v '^fips-run: note: ' "$WORK/bad.err" | grep -c . || true)
[ "$errors" = 1 ] || { cat "$WORK/bad.err" >&2; fail "expected exactly one error line on stderr, got $errors"; }
python3 - "$WORK/bad.out" "$GOOD" "$WORK/arm/out.jsonl" <<'PY' || fail "the good image after the bad one was not processed correctly"
import json, sys
out, good, ref = sys.argv[1:]
rows = [json.loads(l) for l in open(out) if l.strip()]
mine = [r for r in rows if r.get("image") == good]
if len(mine) != 1:
    print(f"  expected one result line for {good}, got {len(mine)}: {rows}", file=sys.stderr); sys.exit(1)
if any("empty.png" in str(r.get("image")) for r in rows):
    print("  the bad image has a result line on stdout", file=sys.stderr); sys.exit(1)
first = {json.loads(l)["image"]: json.loads(l) for l in open(ref) if l.strip()}[good]
if "top" in first and [t["label"] for t in first["top"]] != [t["label"] for t in mine[0].get("top", [])]:
    print("  the good image's labels changed after a bad image", file=sys.stderr); sys.exit(1)
if "cls_norm" in first and abs(first["cls_norm"] - mine[0].get("cls_norm", 1e30)) > 1e-6 * max(1, abs(first["cls_norm"])):
    print("  the good image's cls_norm changed after a bad image", file=sys.stderr); sys.exit(1)
PY
say "bad input: exit status $rc, stderr: $(head -1 "$WORK/bad.err")"

say "OK: $BOARD build under qemu${QEMU_ARGS[*]+ ${QEMU_ARGS[*]}} matches the x86-64 host build$([ "$EXACT" = 1 ] && echo ' bit for bit') on ${#PHOTOS[@]} photos, and handles a bad image"
