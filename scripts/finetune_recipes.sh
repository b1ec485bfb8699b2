#!/usr/bin/env bash
# finetune_recipes.sh — the fine-tuning figures on a CPU (book chapters 6/7, appendix E) with a small GPT-2 that
# the project pretrains itself on tinyshakespeare (OpenAI weights are not available offline).
# Usage: scripts/finetune_recipes.sh [build-dir]   (outputs and logs in out/finetune/)
# Stages can be run separately: STAGE=pretrain|classify|instruct scripts/finetune_recipes.sh
set -euo pipefail
BUILD=${1:-build}
OUT=out/finetune
THREADS=${THREADS:-1}
mkdir -p $OUT
stage() { [ -z "${STAGE:-}" ] || [ "${STAGE}" = "$1" ]; }

if stage pretrain; then
  # 7.3M-parameter GPT-2 (L=4, C=128, 4 heads, context 256, GPT-2 vocabulary), 150 steps of 8x64 tokens
  $BUILD/finetune_init --out $OUT/init.bin --layers 4 --channels 128 --heads 4 --context 256 --seed 42
  $BUILD/gpt2_cpu train --init $OUT/init.bin -b 8 -t 64 -x 150 -l 1e-3 -u 10 -q 0.1 -c 0.1 -v 50 -m 10 -s 0 \
      -o $OUT/pretrain --overwrite --threads $THREADS | tee $OUT/pretrain.log
fi
BASE=$OUT/pretrain/model_00000150.bin

if stage classify; then
  D=data/finetune
  # book chapter 6 recipe: last block + final LayerNorm + head, AdamW lr 5e-5 wd 0.1, batch 8, 5 epochs
  $BUILD/gpt2_cpu finetune-classify --model $BASE --train $D/sms_spam_train.csv --val $D/sms_spam_validation.csv \
      --test $D/sms_spam_test.csv --epochs 5 --eval-batches 5 --threads $THREADS --out $OUT/spam_last.cls \
      | tee $OUT/classify_last.log
  # all tensors trainable (book exercise), higher lr for the tiny model; 2 epochs (CPU time)
  $BUILD/gpt2_cpu finetune-classify --model $BASE --train $D/sms_spam_train.csv --val $D/sms_spam_validation.csv \
      --test $D/sms_spam_test.csv --epochs 2 --eval-batches 5 --train-blocks all --lr 5e-4 --threads $THREADS \
      --out $OUT/spam_all.cls | tee $OUT/classify_all.log
  # same with lr 1e-4 for 1 epoch (lr 5e-4 diverged in epoch 2: see the report)
  $BUILD/gpt2_cpu finetune-classify --model $BASE --train $D/sms_spam_train.csv --val $D/sms_spam_validation.csv \
      --test $D/sms_spam_test.csv --epochs 1 --eval-batches 5 --train-blocks all --lr 1e-4 --threads $THREADS \
      --out $OUT/spam_all_lr1e-4.cls | tee $OUT/classify_all_lr1e-4.log
  # appendix E: LoRA r16 alpha16, lr 8e-4; 2 epochs (CPU time)
  $BUILD/gpt2_cpu finetune-classify --model $BASE --train $D/sms_spam_train.csv --val $D/sms_spam_validation.csv \
      --test $D/sms_spam_test.csv --epochs 2 --eval-batches 5 --lora-rank 16 --lora-alpha 16 --lr 8e-4 \
      --threads $THREADS --out $OUT/spam_lora.cls | tee $OUT/classify_lora.log
  $BUILD/gpt2_cpu classify --model $OUT/spam_lora.cls \
      --text "You are a winner you have been specially selected to receive \$1000 cash or a \$2000 award."
  $BUILD/gpt2_cpu classify --model $OUT/spam_lora.cls \
      --text "Hey, just wanted to check if we're still on for dinner tonight? Let me know!"
fi

if stage instruct; then
  # book chapter 7 (all tensors trainable, lr 5e-5 -> 5e-4 for the tiny model), reduced to fit a shared CPU:
  # first 200 training entries, 1 epoch, responses for the first 20 test entries (max 64 new tokens)
  $BUILD/gpt2_cpu finetune-instruct --model $BASE --data data/finetune/instruction-data.json --train-blocks all \
      --lr 5e-4 --epochs 1 --max-train 200 --max-test 20 --max-new-tokens 64 --threads $THREADS \
      --out $OUT/instruct.bin --responses $OUT/instruction-data-with-response.json | tee $OUT/instruct.log
fi
