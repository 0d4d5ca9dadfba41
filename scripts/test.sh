#!/usr/bin/env bash
# The project's test command: unit, golden and runner tests on x86-64 (release
# build: the golden tests run the real 22M-parameter model), then the aarch64
# cross-build checked under qemu against the x86 build.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release
# The fp32 artifact of the real model: the data tests and the qemu check use it.
if [ ! -f data/dinov2_s.fips ] || [ data/vit_s_focus.onnx -nt data/dinov2_s.fips ]; then
  .build/release/fips import data/vit_s_focus.onnx -o data/dinov2_s.fips
fi
swift test -c release
scripts/check_aarch64.sh data/dinov2_s.fips
# A FiPS-compressed artifact (shared bases, CSR projections at 50% sparsity)
# through the same comparison; a short calibration, since only the runtime
# path is under test here (compression quality is Benchmarks/compression_table.py).
.build/release/fips compress --model data/dinov2_s.fips --calib fashion-mnist --calib-images 16 --steps 20 \
  --mlp-budget 0.5 --sparsity 0.5 -o data/fips_smoke.fips > /dev/null
CHECK_SKIP_BUILD=1 CHECK_PHOTOS=data/photos/chelsea.png scripts/check_aarch64.sh data/fips_smoke.fips
echo "test.sh: all passed"
