// compat.cuh — the ONLY CUDA include for kernel code (kernels/*.cuh, tests/kernels/*.cu, dev/cuda/*.cu).
//
// Why: the same kernel source must compile with nvcc (real CUDA, sm_80/sm_90) and with g++, where it runs
// on the CPU through the CUDA-on-CPU layer (cuda_cpu/cucpu.h: one fiber per CUDA thread, strict checks).
// Kernel code therefore follows three conventions (docs: cuda_cpu/README.md):
//   1. launch with   launch_kernel(kernel, grid, block, smem_bytes, stream, args...);
//      (template kernels with explicit arguments: launch_kernel(k<256, float>, ...)); it aborts with the
//      launch site on a launch error, under nvcc too.
//   2. dynamic shared memory with   DYNAMIC_SHARED(float, smem);   instead of extern __shared__ float smem[];
//   3. check runtime calls with     CUDA_CHECK(cudaMemcpy(...));   which prints file:line + the CUDA error
//      string to stderr and calls abort() (it does not throw: a failed CUDA call is an internal error,
//      not bad input).
#pragma once

#ifdef __CUDACC__
// ---------------------------------------------------------------- nvcc: real CUDA
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cooperative_groups.h>
#include <cooperative_groups/reduce.h>
#include <cstdio>
#include <cstdlib>
#include <utility>

#define DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) T name[]

namespace cucpu {
// Launch through a function pointer (nvcc accepts <<<>>> on it), then check for a launch error.
template <class... KA, class... A>
void launch_checked(const char* file, int line, const char* what, void (*k)(KA...), dim3 grid, dim3 block,
                    size_t smem, cudaStream_t stream, A&&... args) {
  static_assert(sizeof...(KA) == sizeof...(A), "launch_kernel: wrong number of kernel arguments");
  k<<<grid, block, smem, stream>>>(std::forward<A>(args)...);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s:%d: launch_kernel(%s) failed: %s\n", file, line, what, cudaGetErrorString(e));
    std::abort();
  }
}
}  // namespace cucpu

#else
// ---------------------------------------------------------------- g++: the CUDA-on-CPU layer
#include "cuda_cpu/cucpu.h"
#include "cuda_cpu/cucpu_cg.h"
#endif

#include <cstdio>
#include <cstdlib>

namespace cucpu {
inline void check_cuda(cudaError_t e, const char* expr, const char* file, int line) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s:%d: CUDA error %d (%s) in %s\n", file, line, (int)e, cudaGetErrorString(e), expr);
    std::fflush(stderr);
    std::abort();
  }
}
}  // namespace cucpu

#ifndef CUDA_CHECK
#define CUDA_CHECK(expr) ::cucpu::check_cuda((expr), #expr, __FILE__, __LINE__)
#endif

// launch_kernel(kernel, grid, block, smem_bytes, stream, args...): a macro so that messages can name the
// kernel (the first top-level argument) and the launch site.
#define launch_kernel(...) ::cucpu::launch_checked(__FILE__, __LINE__, #__VA_ARGS__, __VA_ARGS__)

namespace cg = cooperative_groups;
