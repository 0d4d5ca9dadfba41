#!/usr/bin/env bash
# The main job end to end on the real model and photos: import the DINOv2
# ViT-S/14 ONNX export to an fp32 artifact and to an int8 artifact for the
# integer runtime (GPTQ weights, calibrated activation scales), run both with
# fips-run, cross-build the device programs for a Raspberry Pi 5 and run the
# int8 model with that binary under qemu; then fit the model to a 26 MB budget
# with fips-plan and classify the photos with fipsd watching a folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/stamp_revision.sh   # --version's git revision
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
echo "--- fit the model to a 26 MB budget (artifact + activation memory) with the x86-64 host profile"
.build/release/fips-plan --model data/dinov2_s.fips --calib fashion-mnist --calib-images 32 \
  --profile profiles/x86-64.json --budget 26MB --max-pixels 741x500 --max-input-bytes 1MB \
  -o data/dinov2_s.plan26.fips   # the largest sample photo (741x500 PNG, 0.8 MB) within the budget
echo "--- fipsd on the planned model: the photos dropped into a watched folder, one JSON line each"
inbox="$(mktemp -d)"
.build/release/fipsd --model data/dinov2_s.plan26.fips --watch "$inbox" --quiet > "$inbox.jsonl" &
fipsd_pid=$!
n=0
for f in data/photos/*; do cp "$f" "$inbox/.tmp" && mv "$inbox/.tmp" "$inbox/$(basename "$f")"; n=$((n + 1)); done
for _ in $(seq 1 240); do [ "$(wc -l < "$inbox.jsonl")" -ge "$n" ] && break; sleep 0.5; done
kill -TERM "$fipsd_pid"; wait "$fipsd_pid"
cat "$inbox.jsonl"
[ "$(wc -l < "$inbox.jsonl")" -ge "$n" ] || { echo "demo: fipsd classified fewer than $n photos" >&2; exit 1; }
rm -rf "$inbox" "$inbox.jsonl"
