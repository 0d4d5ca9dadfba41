#!/usr/bin/env bash
# Tests/Integration/check_profile.sh
#
# fips-profile in CI: runs the aarch64 build (Pi 5, ./boards/build rpi5
# --release) under qemu-aarch64-static and the x86-64 host build, both with
# --quick --functional-only (every code path once; the timings of an emulator
# mean nothing), and validates their JSON and the committed profiles/*.json
# against profiles/schema.json (python jsonschema), then prices a model with
# each through `fips latency`. ~20 s under qemu.
#
# Environment: CHECK_SKIP_BUILD=1 (build/rpi5 and .build/release are already
# built), CHECK_QEMU=qemu-aarch64-static (the emulator), CHECK_KEEP=1 (keep
# the output directory and print its path).
set -euo pipefail
cd "$(dirname "$0")/../.."

QEMU="${CHECK_QEMU:-qemu-aarch64-static}"
say() { printf 'check_profile: %s\n' "$*"; }
fail() { printf 'check_profile: FAIL: %s\n' "$*" >&2; exit 1; }

command -v "$QEMU" >/dev/null || fail "$QEMU not found (scripts/setup.sh installs qemu-user-static)"
python3 -c 'import jsonschema' 2>/dev/null || fail "python jsonschema missing (scripts/setup.sh: pip install jsonschema)"
if [ "${CHECK_SKIP_BUILD:-}" != 1 ]; then
  ./boards/build rpi5 --release >/dev/null
  swift build -c release --product fips-profile >/dev/null
  swift build -c release --product fips >/dev/null
fi
[ -x build/rpi5/fips-profile ] || fail "build/rpi5/fips-profile missing (./boards/build rpi5 --release)"
[ -x .build/release/fips-profile ] || fail ".build/release/fips-profile missing (swift build -c release)"

WORK="$(mktemp -d)"
if [ "${CHECK_KEEP:-}" = 1 ]; then say "keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi

t0=$(date +%s)
"$QEMU" build/rpi5/fips-profile --quick --functional-only --name qemu-aarch64 -o "$WORK/qemu-aarch64.json" 2>"$WORK/qemu.err" \
  || { cat "$WORK/qemu.err" >&2; fail "fips-profile under qemu-aarch64 failed"; }
say "aarch64 fips-profile under qemu: $(( $(date +%s) - t0 )) s"
.build/release/fips-profile --quick --functional-only --name x86-64-functional -o "$WORK/x86-64.json" 2>"$WORK/x86.err" \
  || { cat "$WORK/x86.err" >&2; fail "fips-profile (x86-64) failed"; }
# --help works and a bad option is refused with status 2.
.build/release/fips-profile --help | grep -q -- '--functional-only' || fail "--help does not describe --functional-only"
rc=0; .build/release/fips-profile --bogus 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "an unknown option gave exit status $rc, not 2"

python3 - "$WORK/qemu-aarch64.json" "$WORK/x86-64.json" profiles/*.json <<'PY'
import json, sys
import jsonschema
schema = json.load(open("profiles/schema.json"))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
for path in sys.argv[1:]:
    if path.endswith("schema.json"):
        continue
    doc = json.load(open(path))
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        for e in errors[:10]:
            print(f"check_profile: {path}: {'/'.join(map(str, e.path))}: {e.message}", file=sys.stderr)
        sys.exit(f"check_profile: FAIL: {path} does not validate against profiles/schema.json")
    print(f"check_profile: {path}: valid ({len(doc['gemm'])} GEMM, {len(doc['vit'])} ViT timings)")
q = json.load(open(sys.argv[1]))
assert q["functional_only"] is True, "the qemu profile must be functional_only"
assert q["system"]["arch"] == "aarch64", q["system"]["arch"]
assert "asimddp" in q["system"]["features"], "qemu's default CPU has dotprod: AT_HWCAP was not read"
assert q["kernels"]["best"] == "neon-dotprod", q["kernels"]
formats = {g["format"] for g in q["gemm"]}
assert formats == {"q8", "q8-sparse", "q4g32", "q3g32", "q2g32", "f32"}, formats
PY

# The profiles price a model (the functional one with its warning).
MODEL=data/dinov2_s.q8.fips
[ -f "$MODEL" ] || fail "$MODEL missing (scripts/test.sh makes it)"
for p in "$WORK/qemu-aarch64.json" profiles/*.json; do
  case "$p" in *schema.json) continue ;; esac
  .build/release/fips latency --profile "$p" --json "$MODEL" 2>/dev/null | grep -q '"total_ms"' || fail "fips latency --profile $p failed"
done
say "OK: fips-profile runs under qemu-aarch64 and on x86-64; every profile validates against profiles/schema.json"
