#!/usr/bin/env bash
# ci_kernels.sh — the kernel part of CI (issue 4): every kernel runs on the CPU through the CUDA-on-CPU layer.
#   1. build (with the nvcc compile-only checks for sm_80 + sm_90) and run the `kernels` tests
#   2. run them again in random-order mode under CUCPU_SHUFFLE=1, 2, 3
#   3. an ASan+UBSan build of the kernel tests (build-asan), run once
#   4. a TSan build of the kernel tests (build-tsan), run once; skip with CI_KERNELS_TSAN=0
#   CI_KERNELS_SKIP_PLAIN=1 skips the fixed-order run of step 1 (scripts/test_all.sh has run all tests already)
# Usage: scripts/ci_kernels.sh [build-dir-prefix]   (default: build; JOBS=2 by default)
# Exit status: non-zero if any step fails (the script stops at the first failing step).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-build}
jobs=${JOBS:-2}
tsan=${CI_KERNELS_TSAN:-1}
t_start=$(date +%s)

step() { printf '\n==== [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

configure() {  # dir, extra args...
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; return 1; }
}

ctest_kernels() {  # dir, extra ctest args...
  local dir=$1
  shift
  (cd "$dir" && ctest -L kernels --output-on-failure -j "$jobs" "$@")
}

mkdir -p "$(dirname "$prefix")"

step "plain build + nvcc compile-only checks (sm_80, sm_90)"
configure "$prefix" -DLLM_NVCC_CHECK=ON
cmake --build "$prefix" -j "$jobs" --target kernel_tests
if cmake --build "$prefix" --target help | grep -q nvcc_check; then
  cmake --build "$prefix" -j "$jobs" --target nvcc_check
else
  echo "nvcc not found: skipping the nvcc compile-only checks"
fi

if [[ "${CI_KERNELS_SKIP_PLAIN:-0}" == 0 ]]; then  # scripts/test_all.sh already ran every test once
  step "kernel tests (fixed order)"
  ctest_kernels "$prefix"
fi

for seed in 1 2 3; do
  step "kernel tests, random order CUCPU_SHUFFLE=$seed"
  CUCPU_SHUFFLE=$seed ctest_kernels "$prefix"
done

step "ASan+UBSan build of the kernel tests"
configure "$prefix-asan" -DLLM_SANITIZE=address -DLLM_WITH_CUDA=OFF
cmake --build "$prefix-asan" -j "$jobs" --target kernel_tests
# detect_leaks=0: death tests abort on purpose; fibers' stacks are deliberately kept for reuse
ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest_kernels "$prefix-asan" --timeout 600

if [[ "$tsan" != 0 ]]; then
  step "TSan build of the kernel tests"
  configure "$prefix-tsan" -DLLM_SANITIZE=thread -DLLM_WITH_CUDA=OFF
  cmake --build "$prefix-tsan" -j "$jobs" --target kernel_tests
  # threadsafe death tests: TSan ignores everything in a child forked from a multi-threaded process
  GTEST_DEATH_TEST_STYLE=threadsafe TSAN_OPTIONS=halt_on_error=1:report_signal_unsafe=0:die_after_fork=0 \
    ctest_kernels "$prefix-tsan" --timeout 900
fi

step "done in $(($(date +%s) - t_start)) s"
