#!/usr/bin/env bash
# Tests/Integration/check_kernels_aarch64.sh
#
# Bit-exactness of the integer GEMM kernels (Sources/Device/CFipsKernels) across
# architectures, without the Swift toolchain: builds Tests/Integration/kernels/qgemm_check.c
# with the kernels
#   - for x86-64 with gcc, runs it (scalar, avx2, avx512vnni as the CPU has them),
#   - for aarch64 with aarch64-linux-gnu-gcc -static, runs it under
#     qemu-aarch64-static (default CPU model: has dotprod, so neon and
#     neon-dotprod are both tested), then again as a Cortex-A72
#     (-cpu cortex-a72, FIPS_KERNEL=neon: the Raspberry Pi 4 path) and checks
#     that neon-dotprod is refused there.
# Each run compares every kernel with the scalar one bit for bit; the three
# runs must print the same checksum over the same random cases. ~10 s.
#
# Environment: CHECK_QEMU=qemu-aarch64-static (the emulator), CHECK_KEEP=1
# (keep the build directory and print its path).
set -euo pipefail
cd "$(dirname "$0")/../.."

QEMU="${CHECK_QEMU:-qemu-aarch64-static}"
say() { printf 'check_kernels_aarch64: %s\n' "$*"; }
fail() { printf 'check_kernels_aarch64: FAIL: %s\n' "$*" >&2; exit 1; }

for tool in gcc aarch64-linux-gnu-gcc "$QEMU"; do
  command -v "$tool" >/dev/null || fail "$tool not found (scripts/setup.sh installs gcc-aarch64-linux-gnu and qemu-user-static)"
done

WORK="$(mktemp -d)"
if [ "${CHECK_KEEP:-}" = 1 ]; then say "keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi

SRC=(Tests/Integration/kernels/qgemm_check.c Sources/Device/CFipsKernels/*.c)
# -ffp-contract=off is part of the contract: gcc fuses a*b+c by default.
FLAGS=(-O2 -ffp-contract=off -Wall -Wextra -Werror -I Sources/Device/CFipsKernels/include)

gcc "${FLAGS[@]}" -o "$WORK/qgemm_check_x86" "${SRC[@]}" -lm
aarch64-linux-gnu-gcc -static "${FLAGS[@]}" -o "$WORK/qgemm_check_arm" "${SRC[@]}" -lm

checksum() { sed -n 's/.*checksum \([0-9a-f]*\).*/\1/p' <<<"$1"; }

out_x86="$("$WORK/qgemm_check_x86")" || fail "x86-64: $out_x86"
say "x86-64:            $(tail -1 <<<"$out_x86") [$(head -1 <<<"$out_x86" | sed 's/.*testing //')]"
out_arm="$("$QEMU" "$WORK/qgemm_check_arm")" || fail "aarch64: $out_arm"
say "aarch64 (qemu):    $(tail -1 <<<"$out_arm") [$(head -1 <<<"$out_arm" | sed 's/.*testing //')]"
grep -q 'testing.*neon-dotprod' <<<"$out_arm" || fail "aarch64 under qemu did not test neon-dotprod: $out_arm"
out_a72="$(FIPS_KERNEL=neon "$QEMU" -cpu cortex-a72 "$WORK/qgemm_check_arm")" || fail "aarch64 Cortex-A72: $out_a72"
say "aarch64 Cortex-A72: $(tail -1 <<<"$out_a72") [$(head -1 <<<"$out_a72" | sed 's/.*testing //')]"
grep -q 'best kernel neon;' <<<"$out_a72" || fail "Cortex-A72: best kernel should be neon: $out_a72"

rc=0
refused="$(FIPS_KERNEL=neon-dotprod "$QEMU" -cpu cortex-a72 "$WORK/qgemm_check_arm")" || rc=$?
[ "$rc" = 3 ] || fail "Cortex-A72 did not refuse FIPS_KERNEL=neon-dotprod (exit $rc): $refused"
say "aarch64 Cortex-A72: FIPS_KERNEL=neon-dotprod refused"

cx="$(checksum "$out_x86")"; ca="$(checksum "$out_arm")"; c72="$(checksum "$out_a72")"
[ -n "$cx" ] && [ "$cx" = "$ca" ] && [ "$cx" = "$c72" ] || fail "checksums differ: x86-64 $cx, aarch64 $ca, Cortex-A72 $c72"
say "ok: every kernel bit-exact, same checksum $cx on x86-64 and aarch64"
