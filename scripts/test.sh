#!/usr/bin/env bash
# The project's test command: unit, golden and runner tests on x86-64 (release
# build: the golden tests run the real 22M-parameter model), then the aarch64
# cross-build checked under qemu against the x86 build.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release
swift test -c release
if [ ! -f data/dinov2_s.fips ] || [ data/vit_s_focus.onnx -nt data/dinov2_s.fips ]; then
  .build/release/fips import data/vit_s_focus.onnx -o data/dinov2_s.fips
fi
scripts/check_aarch64.sh data/dinov2_s.fips
echo "test.sh: all passed"
