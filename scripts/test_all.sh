#!/usr/bin/env bash
# The README's test command (after scripts/setup.sh): build everything, run every test suite, then the kernel
# CI extras (random-order runs, ASan+UBSan and TSan builds of the kernel tests, nvcc compile-only checks), then the
# model/trainer/dp/weights tests of a portable build (-DLLM_NATIVE=OFF, scripts/ci_portable.sh).
#   CI_KERNELS_TSAN=0  skip the TSan build (the slowest step)
set -euo pipefail
cd "$(dirname "$0")/.."
export JOBS=${JOBS:-$(nproc)}
t0=$(date +%s)
nvcc_flag=-DLLM_NVCC_CHECK=OFF
if command -v nvcc >/dev/null 2>&1 || [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then nvcc_flag=-DLLM_NVCC_CHECK=ON; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$nvcc_flag"
cmake --build build -j "$JOBS"
echo "test_all: build took $(($(date +%s) - t0)) s"
(cd build && ctest --output-on-failure -j "$JOBS" --timeout 900)
echo "test_all: build + tests took $(($(date +%s) - t0)) s"
CI_KERNELS_SKIP_PLAIN=1 bash scripts/ci_kernels.sh build
bash scripts/ci_portable.sh build-portable
echo "test_all: everything took $(($(date +%s) - t0)) s"
