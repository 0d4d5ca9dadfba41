#!/usr/bin/env bash
# Writes the source tree's git revision into Sources/Device/CFipsSys/fips_revision.h
# (git-ignored) for `--version` and fipsd_build_info; rewrites it only when the
# revision changed, so an unchanged tree does not rebuild. Run before every
# build (scripts/test.sh, scripts/demo.sh and boards/build do).
set -euo pipefail
cd "$(dirname "$0")/.."
rev="$(git describe --always --dirty 2>/dev/null || echo unknown)"
out=Sources/Device/CFipsSys/fips_revision.h
line="#define FIPS_REVISION \"$rev\""
if [ ! -f "$out" ] || [ "$(cat "$out")" != "$line" ]; then
  printf '%s\n' "$line" >"$out"
  # A build that ran before the header existed does not know build_info.c
  # depends on it: make the C file newer so every build system recompiles it.
  touch Sources/Device/CFipsSys/build_info.c
fi
