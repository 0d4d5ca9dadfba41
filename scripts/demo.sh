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
echo "--- a head for Fashion-MNIST's 10 classes (logistic regression on CLS features of 20 training images per class)"
.build/release/fips head --model data/dinov2_s.fips --fashion-mnist --per-class 20 -o data/dinov2_s_fmnist.fips
echo "--- fit the model and its head to a 26 MB budget (artifact + activation memory) with the x86-64 host profile"
.build/release/fips-plan --model data/dinov2_s_fmnist.fips --calib fashion-mnist --calib-images 32 \
  --profile profiles/x86-64.json --budget 26MB --max-pixels 741x500 --max-input-bytes 1MB \
  -o data/dinov2_s.plan26.fips   # the largest sample photo (741x500 PNG, 0.8 MB) within the budget
echo "--- fipsd on the planned model: 100 held-back Fashion-MNIST test images dropped into a watched folder"
images="$(mktemp -d)"
inbox="$(mktemp -d)"
python3 scripts/fashion_mnist_images.py "$images" --split test --per-class 10   # + truth.csv, their labels
.build/release/fipsd --model data/dinov2_s.plan26.fips --watch "$inbox" --quiet > "$inbox.jsonl" &
fipsd_pid=$!
n=0
for f in "$images"/*.png; do mv "$f" "$inbox/"; n=$((n + 1)); done   # mv: each file appears whole
for _ in $(seq 1 600); do [ "$(wc -l < "$inbox.jsonl")" -ge "$n" ] && break; sleep 0.5; done
kill -TERM "$fipsd_pid"; wait "$fipsd_pid"
head -3 "$inbox.jsonl"
echo "--- fipsd's labels against the true ones"
python3 scripts/score_results.py "$inbox.jsonl" "$images/truth.csv"
rm -rf "$inbox" "$inbox.jsonl" "$images"
