// residual.cuh — residual add, forward and backward.
//
// Why: out = a + b is the cheapest op in the model and purely memory-bound, so it moves 16-byte chunks.
// Backward just routes dout to both branches (da += dout, db += dout, or = without accumulate). In the
// trainer the residual stream's gradient normally lives in one buffer that LayerNorm backward adds into,
// so residual_backward is there for the unfused path and for tests.
#pragma once
#include "kernels/common.cuh"

namespace kern {

template <class T, int VEC>
__global__ void residual_forward_kernel(T* out, const T* a, const T* b, size_t n) {
  const size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC;
  if (i >= n) return;
  Packed<T, VEC> x = load_chunk<VEC>(a, i, n), y = load_chunk<VEC>(b, i, n), r;
  for (int k = 0; k < VEC; k++) r[k] = from_float<T>(to_float(x[k]) + to_float(y[k]));
  store_chunk<VEC>(out, i, n, r);
}

// da, db = (accumulate ? da, db : 0) + dout.
template <class T, int VEC>
__global__ void residual_backward_kernel(T* da, T* db, const T* dout, size_t n, bool accumulate) {
  const size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC;
  if (i >= n) return;
  Packed<T, VEC> d = load_chunk<VEC>(dout, i, n), ga, gb;
  if (accumulate) {
    ga = load_chunk<VEC>(da, i, n);
    gb = load_chunk<VEC>(db, i, n);
  }
  for (int k = 0; k < VEC; k++) {
    const float g = to_float(d[k]);
    ga[k] = accumulate ? from_float<T>(to_float(ga[k]) + g) : d[k];
    gb[k] = accumulate ? from_float<T>(to_float(gb[k]) + g) : d[k];
  }
  store_chunk<VEC>(da, i, n, ga);
  store_chunk<VEC>(db, i, n, gb);
}

// ---- launchers ----

template <class T>
void residual_forward(T* out, const T* a, const T* b, size_t n, cudaStream_t stream, int block_size = 256) {
  if (n == 0) return;
  constexpr int P = Packed128<T>::size;
  if (can_pack<T>(P, {out, a, b})) {
    launch_kernel(residual_forward_kernel<T, P>, dim3(CEIL_DIV(n, (size_t)block_size * P)), dim3(block_size), 0,
                  stream, out, a, b, n);
  } else {
    launch_kernel(residual_forward_kernel<T, 1>, dim3(CEIL_DIV(n, (size_t)block_size)), dim3(block_size), 0, stream,
                  out, a, b, n);
  }
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void residual_backward(T* da, T* db, const T* dout, size_t n, bool accumulate, cudaStream_t stream,
                       int block_size = 256) {
  if (n == 0) return;
  constexpr int P = Packed128<T>::size;
  if (can_pack<T>(P, {da, db, dout})) {
    launch_kernel(residual_backward_kernel<T, P>, dim3(CEIL_DIV(n, (size_t)block_size * P)), dim3(block_size), 0,
                  stream, da, db, dout, n, accumulate);
  } else {
    launch_kernel(residual_backward_kernel<T, 1>, dim3(CEIL_DIV(n, (size_t)block_size)), dim3(block_size), 0, stream,
                  da, db, dout, n, accumulate);
  }
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kern
