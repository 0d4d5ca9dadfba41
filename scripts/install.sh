#!/usr/bin/env bash
# scripts/install.sh [--prefix /usr/local] [--destdir DIR]
#
# Installs what `swift build -c release` made, laid out as the programs look for it:
#   PREFIX/bin/            fips, fips-plan (host), fips-run, fips-profile, fipsd (x86-64 builds)
#   PREFIX/share/fips/boards/   the board files: `--board rpi5` finds them beside the installed
#                          programs (BoardDescription.searchPath: <bin>/../share/fips/boards)
#   PREFIX/include/fips.h, PREFIX/lib/libfips-c.so   the C API
#   PREFIX/lib/systemd/system/fipsd.service          the unit (its ExecStart names /usr/local/bin)
# --destdir stages the tree under DIR (for packaging), as `make install DESTDIR=` does.
# The host programs link the Swift runtime of the toolchain that built them; the board
# programs are one static file each from ./boards/build (boards/fipsd-install.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/usr/local DESTDIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --destdir) DESTDIR="$2"; shift 2 ;;
    --destdir=*) DESTDIR="${1#*=}"; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
BIN="$ROOT/.build/release"
for p in fips fips-plan fips-run fips-profile fipsd libfips-c.so; do
  [ -f "$BIN/$p" ] || { echo "install.sh: $BIN/$p is missing: run swift build -c release first" >&2; exit 3; }
done
D="$DESTDIR$PREFIX"
install -d "$D/bin" "$D/share/fips/boards" "$D/include" "$D/lib/systemd/system"
install -m 755 "$BIN"/{fips,fips-plan,fips-run,fips-profile,fipsd} "$D/bin/"
install -m 644 "$ROOT"/boards/*.board "$D/share/fips/boards/"
install -m 644 "$ROOT/include/fips.h" "$D/include/"
install -m 755 "$BIN/libfips-c.so" "$D/lib/"
install -m 644 "$ROOT/boards/fipsd.service" "$D/lib/systemd/system/"
echo "install.sh: installed into $D (bin, share/fips/boards, include, lib)"
