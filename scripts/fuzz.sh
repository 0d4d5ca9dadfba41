#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS]   (default 60 per target)
#
# Builds the libFuzzer targets with Swift's -sanitize=fuzzer,address and runs
# each for SECONDS on a copy of its committed seed corpus (Tests/fuzz/corpus/NAME;
# new inputs go to build/fuzz/corpus-NAME, the committed corpus is never
# changed):
#   image     ImageDecoder.decode + Preprocessor (Sources/Device/FipsImage, CImageCodecs)
#   artifact  the .fips reader, Artifact.parse (Sources/Device/FipsArtifact, with FipsKernels' format table)
#   stream    fipsd's MJPEG splitter, HTTP head and multipart parsers (Sources/Device/FipsDaemon)
# (-gline-tables-only: full -g with -c -o makes swift-driver 6.3.1 crash, see
# docs/CROSS_BUILD.md.) A crash or sanitizer report fails the run; the input is kept in build/fuzz/.
# FUZZ_TARGETS="image artifact" picks targets.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SECONDS_EACH="${1:-60}"
TARGETS="${FUZZ_TARGETS:-image artifact stream}"
OUT="$ROOT/build/fuzz"
SWIFTC="${SWIFTC:-$(command -v swiftc || echo /opt/swift/usr/bin/swiftc)}"
CLANG="$(dirname "$SWIFTC")/clang"
[ -x "$CLANG" ] || CLANG=clang
mkdir -p "$OUT/mm/CFipsSys" "$OUT/mm/CFipsKernels"
say() { printf 'fuzz: %s\n' "$*"; }

# CFipsSys has no module map of its own (SwiftPM writes one); write it.
{
  echo 'module CFipsSys {'
  for h in "$ROOT"/Sources/Device/CFipsSys/include/*.h; do echo "  header \"$h\""; done
  echo '  export *'
  echo '}'
} >"$OUT/mm/CFipsSys/module.modulemap"
# Nor has CFipsKernels (the packed-format table the artifact reader checks tensors against).
printf 'module CFipsKernels {\n  header "%s"\n  export *\n}\n' "$ROOT/Sources/Device/CFipsKernels/include/fips_qgemm.h" \
  >"$OUT/mm/CFipsKernels/module.modulemap"
CFLAGS=(-O1 -g -fsanitize=fuzzer-no-link,address -ffp-contract=off -I "$ROOT/Sources/Device/CFipsSys/include" -I "$ROOT/Sources/Device/CImageCodecs/include")
SWIFTFLAGS=(-parse-as-library -O -gline-tables-only -sanitize=fuzzer,address -I "$OUT/mm/CFipsSys" -I "$ROOT/Sources/Device/CImageCodecs/include"
            -Xcc -I -Xcc "$ROOT/Sources/Device/CFipsSys/include")

build() {
  local name="$1"
  case "$name" in
    image)
      "$CLANG" "${CFLAGS[@]}" -c Sources/Device/CFipsSys/fips_sys.c -o "$OUT/fips_sys.o"
      "$CLANG" "${CFLAGS[@]}" -c Sources/Device/CImageCodecs/fips_image_codecs.c -o "$OUT/fips_image_codecs.o"
      "$SWIFTC" "${SWIFTFLAGS[@]}" -module-name FuzzImage Sources/Device/FipsImage/*.swift Tests/fuzz/FuzzImage.swift \
        "$OUT/fips_sys.o" "$OUT/fips_image_codecs.o" -ljpeg -lpng16 -lz -o "$OUT/fuzz-image" ;;
    artifact)
      # The reader asks the format table (FipsKernels' QuantFormat over CFipsKernels) for packed sizes.
      "$CLANG" "${CFLAGS[@]}" -c Sources/Device/CFipsSys/fips_sys.c -o "$OUT/fips_sys.o"
      mkdir -p "$OUT/artifact"
      local kobj=() c
      for c in Sources/Device/CFipsKernels/*.c; do
        "$CLANG" "${CFLAGS[@]}" -I Sources/Device/CFipsKernels/include -c "$c" -o "$OUT/artifact/$(basename "$c" .c).o"
        kobj+=("$OUT/artifact/$(basename "$c" .c).o")
      done
      "$SWIFTC" "${SWIFTFLAGS[@]}" -I "$OUT/mm/CFipsKernels" -module-name FipsKernels -emit-module \
        -emit-module-path "$OUT/artifact/FipsKernels.swiftmodule" -wmo -c Sources/Device/FipsKernels/*.swift \
        -o "$OUT/artifact/FipsKernels.o"
      "$SWIFTC" "${SWIFTFLAGS[@]}" -I "$OUT/mm/CFipsKernels" -I "$OUT/artifact" -module-name FuzzArtifact \
        Sources/Device/FipsArtifact/*.swift Tests/fuzz/FuzzArtifact.swift \
        "$OUT/artifact/FipsKernels.o" "${kobj[@]}" "$OUT/fips_sys.o" -o "$OUT/fuzz-artifact" ;;
    stream)
      "$CLANG" "${CFLAGS[@]}" -c Sources/Device/CFipsSys/fips_sys.c -o "$OUT/fips_sys.o"
      "$CLANG" "${CFLAGS[@]}" -c Sources/Device/CFipsSys/build_info.c -o "$OUT/build_info.o"
      "$CLANG" "${CFLAGS[@]}" -c Sources/Device/CFipsSys/fips_args.c -o "$OUT/fips_args.o"   # Flags.swift's getopt_long
      mkdir -p "$OUT/stream"
      # Http.swift's TextBuffer and parseInt: FipsDeviceSupport's text output and flag files
      # (with the --version and exit-status tables and the size/duration parser Flags.swift uses) only.
      "$SWIFTC" "${SWIFTFLAGS[@]}" -module-name FipsDeviceSupport -emit-module -emit-module-path "$OUT/stream/FipsDeviceSupport.swiftmodule" \
        -wmo -c Sources/Device/FipsDeviceSupport/{TextOutput,Flags,BuildInfo,ExitStatus,Quantities}.swift -o "$OUT/stream/FipsDeviceSupport.o"
      "$SWIFTC" "${SWIFTFLAGS[@]}" -I "$OUT/stream" -module-name FuzzStream Sources/Device/FipsDaemon/{MjpegSplitter,Http,Multipart}.swift \
        Tests/fuzz/FuzzStream.swift "$OUT/stream/FipsDeviceSupport.o" "$OUT/fips_sys.o" "$OUT/build_info.o" "$OUT/fips_args.o" -o "$OUT/fuzz-stream" ;;
    *) echo "fuzz: unknown target $name" >&2; exit 2 ;;
  esac
}

rc=0
for t in $TARGETS; do
  say "building $t"
  if ! build "$t" >"$OUT/build-$t.log" 2>&1; then
    grep -v 'Cannot export local symbol' "$OUT/build-$t.log" >&2 || true
    say "FAIL: building $t"; exit 1
  fi
  mkdir -p "$OUT/corpus-$t" "$OUT/crash-$t"
  say "running $t for ${SECONDS_EACH}s (seeds: Tests/fuzz/corpus/$t, $(ls "Tests/fuzz/corpus/$t" | wc -l) files)"
  if "$OUT/fuzz-$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$OUT/crash-$t/" "$OUT/corpus-$t" "Tests/fuzz/corpus/$t" >"$OUT/run-$t.log" 2>&1; then
    say "ok $t: $(grep -E 'stat::number_of_executed_units' "$OUT/run-$t.log" | awk '{print $2}') runs, $(grep -E 'cov:' "$OUT/run-$t.log" | tail -1 | sed -E 's/.*(cov: [0-9]+).*/\1/'), corpus $(ls "$OUT/corpus-$t" | wc -l) new inputs"
  else
    rc=1
    tail -40 "$OUT/run-$t.log" >&2
    say "FAIL $t: crash input in build/fuzz/crash-$t/ (log build/fuzz/run-$t.log)"
  fi
done
exit $rc
