// dropout.cuh — inverted dropout, forward and backward, with the reference's counter-based mask.
//
// Why counter-based: element i is kept iff philox_uniform(seed, stream, i) >= p (host/philox.h), so the mask
// is a pure function of (seed, stream, element index) — no mask tensor is stored, backward regenerates it,
// and the CPU reference (ref::dropout_forward) draws exactly the same mask. Element index semantics: i is the
// flat index into the n-element array, starting at 0, exactly as in cpu/ops.cpp.
// One Philox call yields 4 words = the uniforms of elements 4q..4q+3, so a thread reuses it across its chunk.
#pragma once
#include "kernels/common.cuh"

namespace kern {

// Keep-mask of elements [i, i+VEC) (bit k = element i+k), identical to llm::dropout_keep for each element.
template <int VEC>
__host__ __device__ inline uint32_t dropout_keep_bits(const llm::DropoutSpec& d, size_t i) {
  if (d.p <= 0.0f) return 0xffffffffu;
  uint32_t bits = 0;
  uint64_t cached_q = ~0ull;
  llm::Philox4 r{};
  for (int k = 0; k < VEC; k++) {
    const uint64_t idx = i + k, q = idx >> 2;
    if (q != cached_q) {  // same counter mapping as llm::dropout_uniform
      llm::Philox4 ctr = {{(uint32_t)q, (uint32_t)(q >> 32), d.stream, 0u}};
      r = llm::philox4x32_10(ctr, (uint32_t)d.seed, (uint32_t)(d.seed >> 32));
      cached_q = q;
    }
    if (llm::uniform_from_u32(r.v[idx & 3]) >= d.p) bits |= 1u << k;
  }
  return bits;
}

// out = keep ? inp·scale : 0 (identity copy when p == 0).
template <class T, int VEC>
__global__ void dropout_forward_kernel(T* out, const T* inp, size_t n, llm::DropoutSpec d) {
  const size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC;
  if (i >= n) return;
  const uint32_t keep = dropout_keep_bits<VEC>(d, i);
  const float scale = d.p <= 0.0f ? 1.0f : llm::dropout_scale(d);
  Packed<T, VEC> x = load_chunk<VEC>(inp, i, n), y;
  for (int k = 0; k < VEC; k++) y[k] = (keep >> k) & 1u ? from_float<T>(to_float(x[k]) * scale) : from_float<T>(0.0f);
  store_chunk<VEC>(out, i, n, y);
}

// dinp = (accumulate ? dinp : 0) + (keep ? dout·scale : 0). In place (dinp == dout) is fine without accumulate.
template <class T, int VEC>
__global__ void dropout_backward_kernel(T* dinp, const T* dout, size_t n, llm::DropoutSpec d, bool accumulate) {
  const size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * VEC;
  if (i >= n) return;
  const uint32_t keep = dropout_keep_bits<VEC>(d, i);
  const float scale = d.p <= 0.0f ? 1.0f : llm::dropout_scale(d);
  Packed<T, VEC> dy = load_chunk<VEC>(dout, i, n), dx;
  if (accumulate) dx = load_chunk<VEC>(dinp, i, n);
  for (int k = 0; k < VEC; k++) {
    const bool kept = (keep >> k) & 1u;
    if (accumulate) {
      if (kept) dx[k] = from_float<T>(to_float(dx[k]) + to_float(dy[k]) * scale);
    } else {
      dx[k] = kept ? from_float<T>(to_float(dy[k]) * scale) : from_float<T>(0.0f);
    }
  }
  store_chunk<VEC>(dinp, i, n, dx);
}

// ---- launchers ----

template <class T>
void dropout_forward(T* out, const T* inp, size_t n, const llm::DropoutSpec& d, cudaStream_t stream,
                     int block_size = 256) {
  if (n == 0) return;
  constexpr int P = Packed128<T>::size;
  if (can_pack<T>(P, {out, inp})) {
    launch_kernel(dropout_forward_kernel<T, P>, dim3(CEIL_DIV(n, (size_t)block_size * P)), dim3(block_size), 0,
                  stream, out, inp, n, d);
  } else {
    launch_kernel(dropout_forward_kernel<T, 1>, dim3(CEIL_DIV(n, (size_t)block_size)), dim3(block_size), 0, stream,
                  out, inp, n, d);
  }
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void dropout_backward(T* dinp, const T* dout, size_t n, const llm::DropoutSpec& d, bool accumulate,
                      cudaStream_t stream, int block_size = 256) {
  if (n == 0) return;
  constexpr int P = Packed128<T>::size;
  if (can_pack<T>(P, {dinp, dout})) {
    launch_kernel(dropout_backward_kernel<T, P>, dim3(CEIL_DIV(n, (size_t)block_size * P)), dim3(block_size), 0,
                  stream, dinp, dout, n, d, accumulate);
  } else {
    launch_kernel(dropout_backward_kernel<T, 1>, dim3(CEIL_DIV(n, (size_t)block_size)), dim3(block_size), 0, stream,
                  dinp, dout, n, d, accumulate);
  }
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kern
