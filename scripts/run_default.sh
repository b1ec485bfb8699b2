#!/usr/bin/env bash
# The main job: train a small GPT-2 on the bundled tinyshakespeare and print a text sample.
#   GPU present (nvidia-smi sees one) and build/train_gpt2cu built -> train on the GPU
#   otherwise                                                      -> build/gpt2_cpu on all CPU cores
# Model: the llm.c-style "d6" (6 layers, 6 heads, 384 channels, GPT-2 vocabulary, ~30M parameters), random init.
# Progress is printed every step; val loss every 50 steps; a sample every 100 steps and at the end.
# Environment overrides: BUILD (build dir), OUT (output dir), STEPS, THREADS.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUT=${OUT:-$BUILD/default_run}
TRAIN=data/tinyshakespeare/tiny_shakespeare_train.bin
VAL=data/tinyshakespeare/tiny_shakespeare_val.bin

if [[ ! -f $TRAIN || ! -f $VAL ]]; then
  echo "run_default: preparing tinyshakespeare token shards"
  BUILD=$BUILD bash dev/data/tinyshakespeare.sh
fi

rm -rf "$OUT"  # a fresh run every time (checkpoints and main.log of the last run live here)
start=$SECONDS
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && [[ -x $BUILD/train_gpt2cu ]]; then
  echo "run_default: GPU found, training with $BUILD/train_gpt2cu"
  "$BUILD/train_gpt2cu" train -e d6 -i "$TRAIN" -j "$VAL" -o "$OUT" -b 32 -t 256 -x "${STEPS:-1000}" \
    -l 1e-3 -u 50 -q 0.1 -c 0.1 -v 100 -m 20 -s 250 -g 128 -n 0
else
  [[ -x $BUILD/gpt2_cpu ]] || { echo "error: $BUILD/gpt2_cpu is not built (run: make)" >&2; exit 2; }
  THREADS=${THREADS:-$(nproc)}
  echo "run_default: no GPU, training with $BUILD/gpt2_cpu on $THREADS threads"
  "$BUILD/gpt2_cpu" train --preset d6 -i "$TRAIN" -j "$VAL" -o "$OUT" -b 8 -t 64 -x "${STEPS:-200}" \
    -l 1e-3 -u 20 -q 0.1 -c 0.1 -v 50 -m 8 -s 100 -g 64 --temperature 0.8 --threads "$THREADS"
fi
echo "run_default: finished in $((SECONDS - start)) s; checkpoints and main.log in $OUT"
