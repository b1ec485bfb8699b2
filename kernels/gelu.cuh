// gelu.cuh — GELU (tanh approximation), forward and backward.
//
// Why: elementwise and memory-bound, so each thread moves one 16-byte chunk (8 bf16 / 4 fp32) when the
// pointers allow it; the math is done in fp32 in exactly the order of the reference (cpu/ops.cpp):
//   y  = 0.5·x·(1 + tanh(u)),  u = sqrt(2/π)·(x + 0.044715·x³)
//   dx = dy · (0.5·(1 + tanh(u)) + 0.5·x·(1 − tanh²(u))·sqrt(2/π)·(1 + 3·0.044715·x²))
#pragma once
#include "kernels/common.cuh"

namespace kern {

constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2/π)
constexpr float kGeluCubic = 0.044715f;

__device__ inline float gelu_value(float x) {
  return 0.5f * x * (1.0f + tanhf(kGeluScale * (x + kGeluCubic * x * x * x)));
}
__device__ inline float gelu_grad(float x) {
  const float th = tanhf(kGeluScale * (x + kGeluCubic * x * x * x));
  const float dth = (1.0f - th * th) * kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
  return 0.5f * (1.0f + th) + 0.5f * x * dth;
}

// One thread per chunk of VEC elements.
template <class T, int VEC>
__global__ void gelu_forward_kernel(T* out, const T* inp, size_t n) {
  const size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC;
  if (i >= n) return;
  Packed<T, VEC> x = load_chunk<VEC>(inp, i, n), y;
  for (int k = 0; k < VEC; k++) y[k] = from_float<T>(gelu_value(to_float(x[k])));
  store_chunk<VEC>(out, i, n, y);
}

// dinp = (accumulate ? dinp : 0) + dout·gelu'(inp). In place (dinp == dout) is fine without accumulate.
template <class T, int VEC>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, size_t n, bool accumulate) {
  const size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC;
  if (i >= n) return;
  Packed<T, VEC> x = load_chunk<VEC>(inp, i, n), dy = load_chunk<VEC>(dout, i, n), dx;
  if (accumulate) dx = load_chunk<VEC>(dinp, i, n);
  for (int k = 0; k < VEC; k++) {
    const float g = to_float(dy[k]) * gelu_grad(to_float(x[k]));
    dx[k] = from_float<T>(accumulate ? to_float(dx[k]) + g : g);
  }
  store_chunk<VEC>(dinp, i, n, dx);
}

// ---- launchers ----

template <class T>
void gelu_forward(T* out, const T* inp, size_t n, cudaStream_t stream, int block_size = 256) {
  if (n == 0) return;
  constexpr int P = Packed128<T>::size;
  if (can_pack<T>(P, {out, inp})) {
    launch_kernel(gelu_forward_kernel<T, P>, dim3(CEIL_DIV(n, (size_t)block_size * P)), dim3(block_size), 0, stream,
                  out, inp, n);
  } else {
    launch_kernel(gelu_forward_kernel<T, 1>, dim3(CEIL_DIV(n, (size_t)block_size)), dim3(block_size), 0, stream, out,
                  inp, n);
  }
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void gelu_backward(T* dinp, const T* inp, const T* dout, size_t n, bool accumulate, cudaStream_t stream,
                   int block_size = 256) {
  if (n == 0) return;
  constexpr int P = Packed128<T>::size;
  if (can_pack<T>(P, {dinp, inp, dout})) {
    launch_kernel(gelu_backward_kernel<T, P>, dim3(CEIL_DIV(n, (size_t)block_size * P)), dim3(block_size), 0, stream,
                  dinp, inp, dout, n, accumulate);
  } else {
    launch_kernel(gelu_backward_kernel<T, 1>, dim3(CEIL_DIV(n, (size_t)block_size)), dim3(block_size), 0, stream,
                  dinp, inp, dout, n, accumulate);
  }
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kern
