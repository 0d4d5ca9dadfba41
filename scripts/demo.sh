#!/usr/bin/env bash
# The main job end to end on the real model and photos: import the DINOv2
# ViT-S/14 ONNX export to an fp32 artifact and to an int8 artifact for the
# integer runtime (GPTQ weights, calibrated activation scales), run both with
# fips-run, cross-build the device programs for a Raspberry Pi 5 and run the
# int8 model with that binary under qemu.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release
.build/release/fips import data/vit_s_focus.onnx -o data/dinov2_s.fips
.build/release/fips import data/vit_s_focus.onnx --bits 8 --calib fashion-mnist --calib-images 64 \
  -o data/dinov2_s.q8.fips
.build/release/fips info data/dinov2_s.q8.fips
echo "--- fp32, x86-64"
.build/release/fips-run --model data/dinov2_s.fips data/photos/*.png data/photos/*.jpg
echo "--- int8 integer runtime, x86-64"
.build/release/fips-run --model data/dinov2_s.q8.fips --verbose data/photos/*.png data/photos/*.jpg
./boards/build rpi5 --release
echo "--- int8, aarch64 (Cortex-A76 build under qemu)"
qemu-aarch64-static build/rpi5/fips-run --model data/dinov2_s.q8.fips --verbose data/photos/chelsea.png
