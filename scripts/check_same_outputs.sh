#!/usr/bin/env bash
# scripts/check_same_outputs.sh BASE_REF [--keep]
#
# Behaviour unchanged, checked: builds BASE_REF (a commit, e.g. the one before a
# refactoring) beside the working tree, makes the same three models with each
# build's `fips` — fp32 with a Fashion-MNIST head, its int8 quantisation, and a
# FiPS-compressed one at 4 bits — and runs each build's `fips-run` on the sample
# photos. It fails unless
#   - every artifact is byte-identical between the two builds, and
#   - every fips-run output is identical: the JSON lines (less the timing) and
#     the final features (--features-out, float32 .npy) of every photo, for each
#     model, with the float and the I-ViT integer nonlinearities.
# Work files go to ${FIPS_SAME_DIR:-/tmp/fips-same-outputs-<tree name>}; --keep keeps them
# (the base build and its models, which then make a rerun faster).
set -euo pipefail
# The tree under test: the git work tree this is run from (so one copy of the
# script checks any worktree), else the one the script lives in.
ROOT="$(git rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))"
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
BASE=""; KEEP=0
for a in "$@"; do
  case "$a" in
    -h|--help) usage; exit 0 ;;
    --keep) KEEP=1 ;;
    -*) echo "check_same_outputs: unknown option '$a'" >&2; exit 2 ;;
    *) BASE="$a" ;;
  esac
done
[ -n "$BASE" ] || { usage >&2; exit 2; }
git -C "$ROOT" rev-parse --verify -q "$BASE^{commit}" >/dev/null || { echo "check_same_outputs: '$BASE' is not a commit" >&2; exit 2; }
[ -f "$ROOT/data/vit_s_focus.onnx" ] || { echo "check_same_outputs: data/vit_s_focus.onnx is missing: run scripts/setup.sh" >&2; exit 2; }

WORK="${FIPS_SAME_DIR:-/tmp/fips-same-outputs-$(basename "$ROOT")}"
SRC="$WORK/base-src"
mkdir -p "$WORK"
want="$(git -C "$ROOT" rev-parse "$BASE^{commit}")"
if [ -d "$SRC" ] && [ "$(git -C "$SRC" rev-parse HEAD 2>/dev/null)" != "$want" ]; then
  git -C "$ROOT" worktree remove --force "$SRC" 2>/dev/null || rm -rf "$SRC"
fi
git -C "$ROOT" worktree prune
[ -d "$SRC" ] || git -C "$ROOT" worktree add -q --detach "$SRC" "$want"
[ -e "$SRC/data" ] || ln -s "$ROOT/data" "$SRC/data"
cleanup() { if [ "$KEEP" = 0 ]; then git -C "$ROOT" worktree remove --force "$SRC" 2>/dev/null || true; rm -rf "$WORK/base-models"; fi; }
trap cleanup EXIT

echo "check_same_outputs: building $BASE ($(git -C "$ROOT" rev-parse --short "$want")) and the working tree"
(cd "$SRC" && swift build -c release >"$WORK/base-build.log" 2>&1) || { tail -20 "$WORK/base-build.log"; exit 1; }
(cd "$ROOT" && swift build -c release >"$WORK/new-build.log" 2>&1) || { tail -20 "$WORK/new-build.log"; exit 1; }

PHOTOS=("$ROOT"/data/photos/*)
CAL=(--calib fashion-mnist --calib-images 16)
# make_models BIN OUT: the three models with one build's `fips`.
make_models() {
  local bin="$1" out="$2"
  rm -rf "$out"; mkdir -p "$out"
  "$bin/fips" import "$ROOT/data/vit_s_focus.onnx" -o "$out/backbone.fips" >/dev/null
  "$bin/fips" head --model "$out/backbone.fips" --fashion-mnist --per-class 5 -o "$out/fp32.fips" >/dev/null 2>&1
  "$bin/fips" quantize --model "$out/fp32.fips" "${CAL[@]}" --bits 8 --act-calibration mse -o "$out/q8.fips" >/dev/null 2>&1
  "$bin/fips" compress --model "$out/fp32.fips" "${CAL[@]}" --steps 20 --mlp-budget 0.5 --sparsity 0.5 \
    -o "$out/fips.fips" >/dev/null 2>&1
  "$bin/fips" quantize --model "$out/fips.fips" "${CAL[@]}" --bits 4 -o "$out/fips.q4.fips" >/dev/null 2>&1
}
# run_models BIN MODELS OUT: fips-run on every photo, float and integer nonlinearities.
run_models() {
  local bin="$1" models="$2" out="$3" m nl
  rm -rf "$out"; mkdir -p "$out"
  for m in fp32 q8 fips.q4; do
    for nl in float integer; do
      local args=(--model "$models/$m.fips" --threads 2 --features-out "$out/$m.$nl")
      [ "$nl" = integer ] && args+=(--integer-nonlinear all)
      # less the timing and the output folder, which differ by design
      "$bin/fips-run" "${args[@]}" "${PHOTOS[@]}" | sed -E -e 's/"(ms|decode_ms|forward_ms)": [0-9.]*, //g' -e "s#$out/##g" >"$out/$m.$nl.jsonl"
    done
  done
}

echo "check_same_outputs: models with each build's fips (fp32 + head, q8, FiPS q4)"
# The base's models are made once per base commit while --keep keeps them.
if [ "$(cat "$WORK/base-models/COMMIT" 2>/dev/null)" != "$want" ]; then
  make_models "$SRC/.build/release" "$WORK/base-models"
  echo "$want" >"$WORK/base-models/COMMIT"
fi
make_models "$ROOT/.build/release" "$WORK/new-models"
fail=0
for m in backbone fp32 q8 fips fips.q4; do
  if cmp -s "$WORK/base-models/$m.fips" "$WORK/new-models/$m.fips"; then
    echo "  same bytes: $m.fips ($(stat -c %s "$WORK/new-models/$m.fips") bytes)"
  else
    echo "  DIFFERENT:  $m.fips"; fail=1
  fi
done

echo "check_same_outputs: fips-run of each build on ${#PHOTOS[@]} photos"
run_models "$SRC/.build/release" "$WORK/new-models" "$WORK/base-out"
run_models "$ROOT/.build/release" "$WORK/new-models" "$WORK/new-out"
n=0
while IFS= read -r f; do
  rel="${f#"$WORK/base-out/"}"; n=$((n + 1))
  if ! cmp -s "$f" "$WORK/new-out/$rel"; then echo "  DIFFERENT:  $rel"; fail=1; fi
done < <(find "$WORK/base-out" -type f | sort)
[ "$(find "$WORK/new-out" -type f | wc -l)" = "$n" ] || { echo "  the two builds wrote a different number of outputs"; fail=1; }
echo "  compared $n output files (JSON lines and features)"
if [ "$fail" = 0 ]; then
  echo "check_same_outputs: identical: artifacts and outputs of $BASE and the working tree"
else
  echo "check_same_outputs: outputs differ from $BASE (files in $WORK)" >&2; KEEP=1; exit 1
fi
