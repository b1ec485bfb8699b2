#!/usr/bin/env bash
# ci_portable.sh — the model, trainer, data-parallel and weights tests once more, built WITHOUT -march=native
# (-DLLM_NATIVE=OFF): the portable code paths (scalar/AVX2-free fallbacks of the GEMM, decode products and
# quantisers) and the compiler's generic vectorisation, so results that depend on the CPU's instruction set are
# exercised on every CI run, whatever CPU CI lands on. The tolerances of these tests are derived for any order
# of fp32 reduction (see each test file), so they must hold here too.
# Usage: scripts/ci_portable.sh [build-dir]   (default: build-portable; JOBS=2 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-portable}
jobs=${JOBS:-2}
t0=$(date +%s)
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DLLM_NATIVE=OFF -DLLM_NVCC_CHECK=OFF >"$dir.configure.log" 2>&1 ||
  { cat "$dir.configure.log"; exit 1; }
# every test executable carrying one of the labels run below (each pulls in the program it runs)
have=$(cmake --build "$dir" --target help)
targets=()
for t in test_model test_trainer test_attention_path test_trainer_dp test_dp test_dp_mpi test_weights; do
  if grep -qw "$t" <<<"$have"; then targets+=("$t"); fi
done
cmake --build "$dir" -j "$jobs" --target "${targets[@]}"
echo "ci_portable: build took $(($(date +%s) - t0)) s"
(cd "$dir" && ctest -L 'model|trainer|dp|weights' --output-on-failure -j "$jobs" --timeout 900)
echo "ci_portable: done in $(($(date +%s) - t0)) s"
