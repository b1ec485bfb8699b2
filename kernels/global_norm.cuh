// global_norm.cuh — deterministic global gradient norm and gradient clipping.
//
// Why: the norm decides whether (and how much) every gradient is scaled, so it must not wobble from run to
// run. A float atomicAdd of block sums would make the last bits depend on block scheduling. Instead:
//   pass 1: a number of blocks that depends only on n (never on the device: at least kNormMinPerThread
//           elements per thread, at most kNormMaxBlocks blocks) grid-strides over the data; each thread sums
//           squares in fp32, each block reduces with a fixed tree and writes its own slot;
//   pass 2: one block sums the slots with a fixed tree and writes sqrt(total).
// Same data -> same bits, on any GPU and on the CPU layer. Clipping: grads *= max_norm / norm when
// norm > max_norm (ref::clip_gradients' convention, no epsilon); the norm is read on the device, so no host sync.
#pragma once
#include "kernels/common.cuh"

namespace kern {

constexpr int kNormMaxBlocks = 1024;    // pass-1 blocks at most (GPT-2 sizes: ~1 wave on an H100/H200)
constexpr int kNormMinPerThread = 16;   // pass-1 elements per thread at least (keeps small n cheap)
constexpr int kNormBlockSize = 256;     // threads per pass-1 block
constexpr int kNormReduceSize = 256;    // threads of the single pass-2 block

// Pass-1 grid: a pure function of n, so the summation order (and the result's bits) depends on n only.
inline int global_norm_blocks(size_t n) {
  const size_t per_block = (size_t)kNormBlockSize * kNormMinPerThread;
  const size_t blocks = (n + per_block - 1) / per_block;
  return blocks < 1 ? 1 : blocks > (size_t)kNormMaxBlocks ? kNormMaxBlocks : (int)blocks;
}

template <class T>
__global__ void norm_squared_partials_kernel(float* partials, const T* x, size_t n) {
  float sum = 0.0f;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float g = to_float(x[i]);
    sum += g * g;
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

static __global__ void norm_finish_kernel(float* norm, const float* partials, int num_partials) {
  float sum = 0.0f;
  for (int i = threadIdx.x; i < num_partials; i += blockDim.x) sum += partials[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) *norm = sqrtf(sum);
}

template <class T>
__global__ void clip_kernel(T* grads, size_t n, float max_norm, const float* norm) {
  const float nrm = *norm;
  if (!(nrm > max_norm)) return;  // also leaves grads alone when the norm is NaN
  const float scale = max_norm / nrm;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    grads[i] = from_float<T>(to_float(grads[i]) * scale);
}

// ---- launchers ----

// fp32 device scratch global_norm needs.
inline size_t global_norm_scratch_floats() { return kNormMaxBlocks; }

// *norm (device fp32) = sqrt(Σ x²). scratch: global_norm_scratch_floats() device floats.
template <class T>
void global_norm(float* norm, float* scratch, const T* x, size_t n, cudaStream_t stream) {
  const int blocks = global_norm_blocks(n);
  launch_kernel(norm_squared_partials_kernel<T>, dim3(blocks), dim3(kNormBlockSize), 0, stream, scratch, x, n);
  CUDA_CHECK(cudaGetLastError());
  launch_kernel(norm_finish_kernel, dim3(1), dim3(kNormReduceSize), 0, stream, norm, (const float*)scratch, blocks);
  CUDA_CHECK(cudaGetLastError());
}

// grads *= max_norm / *norm if *norm > max_norm (norm: device pointer, e.g. from global_norm).
template <class T>
void clip_gradients(T* grads, size_t n, float max_norm, const float* norm, cudaStream_t stream,
                    int block_size = 256) {
  if (n == 0) return;
  launch_kernel(clip_kernel<T>, dim3(grid_stride_blocks(n, block_size)), dim3(block_size), 0, stream, grads, n,
                max_norm, norm);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kern
