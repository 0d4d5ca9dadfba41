#!/usr/bin/env bash
# The project's test command: unit, golden and runner tests on x86-64 (release
# build: the golden tests run the real 22M-parameter model), then the aarch64
# cross-builds checked under qemu against the x86 build (fp32 within 1e-3,
# the integer runtime bit for bit).
set -euo pipefail
cd "$(dirname "$0")/.."
# The module graph: imports match Package.swift, device code imports no host module or
# Foundation, and the cross build (which reads its module list from Package.swift) builds
# every device module.
python3 scripts/modules.py check
# No Swift file over 400 lines, no function over 100 outside the GEMM kernels (the exceptions,
# with their reasons, are listed in docs/ARCHITECTURE.md).
python3 scripts/check_sizes.py
bash scripts/stamp_revision.sh   # --version's git revision
swift build -c release
# The fp32 artifact of the real model: the data tests and the qemu check use it.
if [ ! -f data/dinov2_s.fips ] || [ data/vit_s_focus.onnx -nt data/dinov2_s.fips ]; then
  .build/release/fips import data/vit_s_focus.onnx -o data/dinov2_s.fips
fi
# Its int8 artifact, as scripts/demo.sh makes it: LatencyTests reads its block
# formats back and check_profile.sh prices it with every profile.
if [ ! -f data/dinov2_s.q8.fips ] || [ data/dinov2_s.fips -nt data/dinov2_s.q8.fips ]; then
  .build/release/fips import data/vit_s_focus.onnx --bits 8 --calib fashion-mnist --calib-images 64 \
    -o data/dinov2_s.q8.fips > /dev/null
fi
# A FiPS-compressed artifact (shared bases, CSR projections at 50% sparsity) and
# its 4-bit quantisation: LatencyTests reads their ranks and formats back, and
# the aarch64 checks below run them. A short calibration, since only the runtime
# path is under test (compression quality is Benchmarks/compression_table.py).
.build/release/fips compress --model data/dinov2_s.fips --calib fashion-mnist --calib-images 16 --steps 20 \
  --mlp-budget 0.5 --sparsity 0.5 -o data/fips_smoke.fips > /dev/null
.build/release/fips quantize --model data/fips_smoke.fips --calib fashion-mnist --calib-images 16 --bits 4 \
  -o data/fips_smoke.q4.fips 2> /dev/null
# fips export (Tests/Integration/check_export.py): the fp32 model, the FiPS smoke model and its 4-bit
# version (dequantised) as ONNX, run by onnxruntime against `fips forward` on the golden chelsea input,
# and tiny artifacts for the other variants; each output within 1e-4 of its scale.
python3 Tests/Integration/check_export.py --fips .build/release/fips data/dinov2_s.fips data/fips_smoke.fips data/fips_smoke.q4.fips
# The ONNX export matrix (ImportONNXMatrixTests, README "ONNX import and the export matrix"):
# tiny random ViT, distilled DeiT and DINOv2-shaped models exported by both PyTorch exporters
# at two opsets each, one with external data, and onnxruntime's outputs (about 25 s).
python3 scripts/fixtures/make_onnx_matrix.py data/onnx_matrix > /dev/null 2> data/onnx_matrix.log \
  || { cat data/onnx_matrix.log >&2; exit 1; }
swift test -c release
# Bounded decode (Tests/Integration/check_decode_memory.py): a 24 MP JPEG made at run time is
# classified by the q8 model within artifact + arena + 40 MB of peak RSS (it decodes at 1/8),
# by fips-run and by fipsd;
# an oversize PNG, lying headers and a progressive JPEG over the limit are refused by name.
python3 Tests/Integration/check_decode_memory.py --fips-run .build/release/fips-run --fipsd .build/release/fipsd \
  --model data/dinov2_s.q8.fips
# fips-plan's command line on the real model (the planner itself is PlanTests): an infeasible budget
# is refused naming the smallest feasible one, and that budget then plans.
if .build/release/fips-plan --model data/dinov2_s.fips --calib data/photos --calib-images 6 --board rpi5 \
     --budget 1MB --dry-run > /dev/null 2> data/plan_smoke.err; then
  echo "fips-plan accepted a 1 MB budget" >&2; exit 1
fi
smallest=$(sed -n 's/.*smallest feasible memory budget is .* (\([0-9]*\) bytes).*/\1/p' data/plan_smoke.err)
[ -n "$smallest" ] || { cat data/plan_smoke.err >&2; exit 1; }
.build/release/fips-plan --model data/dinov2_s.fips --calib data/photos --calib-images 6 --board rpi5 \
  --budget "${smallest}B" --dry-run > /dev/null   # B: --budget refuses a bare number
Tests/Integration/check_aarch64.sh data/dinov2_s.fips
# The FiPS-compressed artifact made above goes through the same comparison.
CHECK_SKIP_BUILD=1 CHECK_PHOTOS=data/photos/chelsea.png Tests/Integration/check_aarch64.sh data/fips_smoke.fips
# The integer runtime: every GEMM kernel bit-exact against the scalar one on
# x86-64 and aarch64 (qemu, with and without dotprod) ...
Tests/Integration/check_kernels_aarch64.sh
# ... and whole models bit-identical between x86-64 and aarch64: int8 (GPTQ,
# static activation scales from 16 calibration images) on the Pi 5 build (SDOT)
# and the Pi 4 build as a Cortex-A72 (NEON, no dotprod); the FiPS smoke model at
# 4 bits (shared basis, sparse projections) on the Pi 5 build.
.build/release/fips quantize --model data/dinov2_s.fips --calib fashion-mnist --calib-images 16 --bits 8 \
  --act-calibration mse -o data/q8_smoke.fips 2> /dev/null
CHECK_SKIP_BUILD=1 CHECK_EXACT=1 CHECK_PHOTOS="data/photos/chelsea.png data/photos/rocket.jpg" \
  Tests/Integration/check_aarch64.sh data/q8_smoke.fips
CHECK_SKIP_BUILD=1 CHECK_EXACT=1 CHECK_PHOTOS=data/photos/coffee.png Tests/Integration/check_aarch64.sh data/fips_smoke.q4.fips
CHECK_BOARD=rpi4 CHECK_QEMU_CPU=cortex-a72 CHECK_EXACT=1 CHECK_PHOTOS=data/photos/chelsea.png \
  Tests/Integration/check_aarch64.sh data/q8_smoke.fips
# A budget is a promise (Tests/Integration/check_plan_memory.py): plans at 22, 26 and 30 MB, and
# one at 30 MB reserving room for phone photos, carry their input limits; fips-run, fipsd --watch
# and fipsd --listen with 16 concurrent uploads of 12/24/48 MP JPEGs (baseline and progressive),
# a 20 MP PNG, a CMYK JPEG and a lying header stay within the budget above their --help baseline
# or refuse the input by name; the aarch64 fips-run under qemu keeps the inputs within the reserve;
# fipsd with the emulated 640x480 camera (fips-plan's default --camera) and the uploads does too, at
# 26 and 30 MB (the 22 MB and phone-photo plans are made with --camera none: with a camera the
# reduced search needs 22.24 MB, and the phone-photo plan picks a rank-160 FiPS group that 8
# calibration images of 16 tokens cannot reconstruct).
python3 Tests/Integration/check_plan_memory.py --budgets 22:640x480:256KiB:2:none,26,30,30:1000x750:3MB:1:none \
  --qemu qemu-aarch64-static --aarch64-fips-run build/rpi5/fips-run --aarch64-budgets 22:640x480:256KiB:2:none,30:1000x750:3MB:1:none
# fips-profile: the aarch64 build under qemu and the x86-64 build, --quick
# --functional-only, their JSON and the committed profiles validated against
# profiles/schema.json.
CHECK_SKIP_BUILD=1 Tests/Integration/check_profile.sh
# fipsd, the daemon (Tests/Integration/check_fipsd.py): folder and HTTP mode against fips-run on the
# photos with the real DINOv2-S and a linear Fashion-MNIST head (50 training images: only the
# equality of labels is under test), fp32 and int8; corrupt JPEGs, a 5,000-frame RSS soak,
# signals, HTTP abuse, a full disk and a missing camera with a tiny random model; the same on
# the static aarch64 build under qemu (int8); then each libFuzzer target for 60 s.
.build/release/fips head --model data/dinov2_s.fips --fashion-mnist --per-class 5 -o data/fipsd_head.fips > /dev/null
.build/release/fips quantize --model data/fipsd_head.fips --calib fashion-mnist --calib-images 8 --bits 8 \
  -o data/fipsd_head.q8.fips > /dev/null 2>&1
# fips head on a packed model keeps its packed tensors (features from the integer runtime):
# the refitted file is the size of its source, not an fp32 copy, and it runs.
.build/release/fips head --model data/fipsd_head.q8.fips --fashion-mnist --per-class 5 \
  -o data/fipsd_head.q8.refit.fips > /dev/null 2>&1
python3 -c 'import os, sys; a, b = (os.path.getsize(f"data/fipsd_head.q8{s}.fips") for s in ("", ".refit"))
sys.exit(0 if abs(a - b) <= 8192 else f"fips head on a packed model changed its size {a} -> {b} bytes")'
.build/release/fips-run --model data/fipsd_head.q8.refit.fips data/photos/chelsea.png > /dev/null
python3 scripts/fixtures/make_tiny_model.py data/fipsd_tiny.fips
python3 Tests/Integration/check_fipsd.py --fipsd .build/release/fipsd --fips-run .build/release/fips-run \
  --model data/fipsd_head.fips --tiny data/fipsd_tiny.fips
python3 Tests/Integration/check_fipsd.py --fipsd .build/release/fipsd --fips-run .build/release/fips-run \
  --model data/fipsd_head.q8.fips --tiny data/fipsd_tiny.fips --only labels
[ -x build/rpi5/fipsd ] || ./boards/build rpi5 --release
python3 Tests/Integration/check_fipsd.py --qemu qemu-aarch64-static --fipsd build/rpi5/fipsd --fips-run build/rpi5/fips-run \
  --model data/fipsd_head.q8.fips --tiny data/fipsd_tiny.fips
# One command-line grammar (Tests/Integration/check_cli.py): --version, --opt=value, "--" and the
# exit-status table (0/1/2/3) in every program, host builds and the aarch64 device programs under qemu.
python3 Tests/Integration/check_cli.py
python3 Tests/Integration/check_cli.py --device-bin build/rpi5 --qemu qemu-aarch64-static
# The C API (include/fips.h, Tests/Integration/check_capi.py): examples/classify.c against libfips-c.so and
# examples/classify.py through ctypes on the host, classify.c linked statically with build/rpi5/libfips.a
# under qemu: the labels, scores and embeddings of fips-run.
swift build -c release --product fips-c
python3 Tests/Integration/check_capi.py
# scripts/install.sh under a staging prefix: the installed fips finds --board rpi5 in
# <prefix>/share/fips/boards from a directory with no boards/ (here /), with no source tree above it.
stage="$(mktemp -d)"
bash scripts/install.sh --destdir "$stage" --prefix /opt/fips > /dev/null
tiny="$PWD/data/fipsd_tiny.fips"
(cd / && "$stage/opt/fips/bin/fips" latency --board rpi5 --model "$tiny" --json) | grep -q '"total_ms"' \
  || { echo "test.sh: the installed fips did not find --board rpi5 under $stage/opt/fips/share/fips/boards" >&2; exit 1; }
rm -rf "$stage"
[ -f build/rpi5/libfips.a ] || ./boards/build rpi5 --release
python3 Tests/Integration/check_capi.py --device-bin build/rpi5 --qemu qemu-aarch64-static --model data/fipsd_tiny.fips  # the real model: minutes under qemu
scripts/fuzz.sh 60
echo "test.sh: all passed"
