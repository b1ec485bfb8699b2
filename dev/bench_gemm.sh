#!/usr/bin/env bash
# bench_gemm.sh — build and run the GEMM micro-benchmark (GPT-2 124M linear-layer shapes, B·T = 256 rows),
# old kernel vs current, with 1 and 2 threads.   usage: dev/bench_gemm.sh [extra bench_gemm flags]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" -j2 --target bench_gemm > /dev/null
for threads in 1 2; do
  OMP_NUM_THREADS=$threads OMP_PROC_BIND="${OMP_PROC_BIND:-true}" "$build/bench_gemm" "$@"
done
