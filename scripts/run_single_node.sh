#!/usr/bin/env bash
# run_single_node.sh — data-parallel training on ONE machine: one train_gpt2cu process per GPU.
#
# Usage: scripts/run_single_node.sh [--ngpu N] [--launcher mpirun|env] [--] [train_gpt2cu train flags...]
#   --ngpu N          processes/GPUs (default: every GPU nvidia-smi lists)
#   --launcher mpirun (default) `mpirun -np N build/train_gpt2cu train ...`; the NCCL id goes out over MPI
#   --launcher env    no MPI: starts N processes itself with torchrun-style variables (RANK, WORLD_SIZE,
#                     LOCAL_RANK, MASTER_ADDR=127.0.0.1, MASTER_PORT=$MASTER_PORT or 29500); the NCCL id goes
#                     over TCP. Rank 0's output is shown, the others' go to $OUT_LOGS/rank_<r>.log.
#   -h, --help        this text
# Environment: BUILD (default build), OUT_LOGS (default $BUILD/dp_logs), MASTER_PORT.
# The flags after the options are train_gpt2cu's (same as gpt2_cpu train; -d is the GLOBAL tokens per step, each
# rank reads its own windows; -z 1 shards the optimizer state). Default: GPT-2 124M on tinyshakespeare.
# Example: scripts/run_single_node.sh --ngpu 8 -- -e d12 -b 32 -t 1024 -d 524288 -x 5000 -z 1 -o out/d12
set -euo pipefail
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."
usage() { sed -n '2,/^set -euo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//'; }
BUILD=${BUILD:-build}
NGPU=""
LAUNCHER=mpirun
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --ngpu) NGPU=${2:?--ngpu needs a number}; shift 2 ;;
    --launcher) LAUNCHER=${2:?--launcher needs mpirun or env}; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
if [[ -z "$NGPU" ]]; then
  NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  [[ "$NGPU" -ge 1 ]] || { echo "error: no GPU found by nvidia-smi (give --ngpu, or use build/gpt2_cpu)" >&2; exit 2; }
fi
[[ "$NGPU" =~ ^[1-9][0-9]*$ ]] || { echo "error: --ngpu must be a positive integer (got '$NGPU')" >&2; exit 2; }
BIN="$BUILD/train_gpt2cu"
[[ -x "$BIN" ]] || { echo "error: $BIN is not built (cmake --build $BUILD --target train_gpt2cu)" >&2; exit 2; }
ARGS=("$@")
if [[ ${#ARGS[@]} -eq 0 ]]; then
  ARGS=(-e d12 -i data/tinyshakespeare/tiny_shakespeare_train.bin -j data/tinyshakespeare/tiny_shakespeare_val.bin
        -b 16 -t 1024 -d $((16 * 1024 * NGPU)) -x 100 -l 6e-4 -u 10 -v 25 -s 50 -o "$BUILD/dp_run")
fi

case "$LAUNCHER" in
  mpirun)
    command -v mpirun >/dev/null || { echo "error: mpirun not found (install openmpi-bin or use --launcher env)" >&2; exit 2; }
    ROOT=(); [[ $(id -u) -eq 0 ]] && ROOT=(--allow-run-as-root)
    # --bind-to none: each rank's host threads (data loading, OpenMP) are not pinned to one core
    exec mpirun -np "$NGPU" "${ROOT[@]}" --bind-to none "$BIN" train "${ARGS[@]}"
    ;;
  env)
    OUT_LOGS=${OUT_LOGS:-$BUILD/dp_logs}
    mkdir -p "$OUT_LOGS"
    export WORLD_SIZE=$NGPU MASTER_ADDR=127.0.0.1 MASTER_PORT=${MASTER_PORT:-29500}
    pids=()
    for ((r = 1; r < NGPU; r++)); do
      RANK=$r LOCAL_RANK=$r "$BIN" train "${ARGS[@]}" > "$OUT_LOGS/rank_$r.log" 2>&1 &
      pids+=($!)
    done
    rc=0
    RANK=0 LOCAL_RANK=0 "$BIN" train "${ARGS[@]}" || rc=$?
    for p in "${pids[@]}"; do wait "$p" || { [[ $rc -ne 0 ]] || rc=$?; }; done
    [[ $rc -eq 0 ]] || echo "run_single_node: a rank failed (exit $rc); other ranks' logs in $OUT_LOGS" >&2
    exit $rc
    ;;
  *) echo "error: --launcher must be mpirun or env (got '$LAUNCHER')" >&2; exit 2 ;;
esac
