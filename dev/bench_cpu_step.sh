#!/usr/bin/env bash
# bench_cpu_step.sh — build and run the CPU training-step benchmark (GPT-2 124M, B=4, T=64, 2 threads).
# usage: dev/bench_cpu_step.sh [extra bench_cpu_step flags]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" -j2 --target bench_cpu_step > /dev/null
OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" OMP_PROC_BIND="${OMP_PROC_BIND:-true}" \
  "$build/bench_cpu_step" --preset gpt2 -b 4 -t 64 --steps 6 --warmup 1 "$@"
