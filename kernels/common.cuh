// common.cuh — small building blocks shared by every kernel family.
//
// Why: each op family is written once, templated on the storage type floatX (float or __nv_bfloat16),
// and always computes in fp32. The pieces every kernel needs live here so they are written (and tested)
// once: fp32 <-> floatX casts, a packed 16-byte vector type for 128-bit loads/stores, warp/block reductions
// with a FIXED order (deterministic results), stochastic rounding to bf16 from a counter-based RNG,
// and the trivial kernels a trainer needs (zero fill, casts).
//
// Convention for packed code: a kernel is templated on VEC, the number of elements it moves per access.
// VEC = Packed128<T>::size gives 16-byte accesses; VEC = 1 is the scalar fallback. Launchers pick the packed
// path only when every pointer is 16-byte aligned and the row length is a multiple of VEC (can_pack()), so
// each kernel works at any shape (odd C, tiny vocab) and is fast at GPT-2 shapes.
#pragma once
#include "cuda_cpu/compat.cuh"
#include "host/philox.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <initializer_list>

#define WARP_SIZE 32
#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

namespace kern {

// ---------------------------------------------------------------------------------------------------------
// Casts between storage types and fp32.

template <class T> __host__ __device__ inline float to_float(T x);
template <> __host__ __device__ inline float to_float<float>(float x) { return x; }
template <> __host__ __device__ inline float to_float<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T> __host__ __device__ inline T from_float(float x);
template <> __host__ __device__ inline float from_float<float>(float x) { return x; }
template <> __host__ __device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

// ---------------------------------------------------------------------------------------------------------
// Packed<T, N>: N elements moved as one access. For 16-byte packs the data goes through int4 so nvcc emits a
// single LDG.128/STG.128 whatever T is.

template <class T, int N>
struct alignas(sizeof(T) * N) Packed {
  static constexpr int size = N;
  T v[N];
  __device__ T& operator[](int i) { return v[i]; }
  __device__ const T& operator[](int i) const { return v[i]; }
};
template <class T> using Packed128 = Packed<T, 16 / sizeof(T)>;

// Plain load of N elements at p (p must be aligned to sizeof(Packed<T,N>)).
template <int N, class T>
__device__ inline Packed<T, N> load_packed(const T* p) {
  Packed<T, N> r;
  if constexpr (sizeof(Packed<T, N>) == 16) {
    int4 bits = *reinterpret_cast<const int4*>(p);
    memcpy(&r, &bits, 16);
  } else {
    r = *reinterpret_cast<const Packed<T, N>*>(p);
  }
  return r;
}
// Streaming load (evict-first): for data read exactly once.
template <int N, class T>
__device__ inline Packed<T, N> load_packed_cs(const T* p) {
  Packed<T, N> r;
  if constexpr (sizeof(Packed<T, N>) == 16) {
    int4 bits = __ldcs(reinterpret_cast<const int4*>(p));
    memcpy(&r, &bits, 16);
  } else {
    r = *reinterpret_cast<const Packed<T, N>*>(p);
  }
  return r;
}
template <int N, class T>
__device__ inline void store_packed(T* p, const Packed<T, N>& x) {
  if constexpr (sizeof(Packed<T, N>) == 16) {
    int4 bits;
    memcpy(&bits, &x, 16);
    *reinterpret_cast<int4*>(p) = bits;
  } else {
    *reinterpret_cast<Packed<T, N>*>(p) = x;
  }
}
// Streaming store: for outputs not re-read soon.
template <int N, class T>
__device__ inline void store_packed_cs(T* p, const Packed<T, N>& x) {
  if constexpr (sizeof(Packed<T, N>) == 16) {
    int4 bits;
    memcpy(&bits, &x, 16);
    __stcs(reinterpret_cast<int4*>(p), bits);
  } else {
    *reinterpret_cast<Packed<T, N>*>(p) = x;
  }
}

// Chunk i of an array of n elements (elements [i, i+N)): a packed access when the chunk is fully in range,
// element by element at the tail (missing elements read as 0, are not written). p[i] must be aligned for Packed<T,N>.
template <int N, class T>
__device__ inline Packed<T, N> load_chunk(const T* p, size_t i, size_t n) {
  if (i + N <= n) return load_packed<N>(p + i);
  Packed<T, N> r;
  for (int k = 0; k < N; k++) r[k] = i + k < n ? p[i + k] : from_float<T>(0.0f);
  return r;
}
template <int N, class T>
__device__ inline void store_chunk(T* p, size_t i, size_t n, const Packed<T, N>& x) {
  if (i + N <= n) {
    store_packed<N>(p + i, x);
  } else {
    for (int k = 0; k < N && i + k < n; k++) p[i + k] = x[k];
  }
}

// Host side: may a kernel use 16-byte packs on these pointers with rows of `row_len` elements?
template <class T>
inline bool can_pack(size_t row_len, std::initializer_list<const void*> ptrs) {
  if (row_len % Packed128<T>::size != 0) return false;
  for (const void* p : ptrs)
    if (p != nullptr && reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Reductions. Fixed butterfly/tree order: the same inputs in the same layout always give the same bits.
// Every lane of the warp must be present (blockDim.x a multiple of 32, no early return before the call).

__device__ inline float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Sum over a 1-D block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
// Ends with a barrier so it can be called again right away (no write-after-read race on the scratch).
__device__ inline float block_sum(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
  const int num_warps = blockDim.x / WARP_SIZE;
  v = warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = warp_sum(lane < num_warps ? partial[lane] : 0.0f);
  __syncthreads();
  return v;
}
__device__ inline float block_max(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
  const int num_warps = blockDim.x / WARP_SIZE;
  v = warp_max(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = warp_max(lane < num_warps ? partial[lane] : -INFINITY);
  __syncthreads();
  return v;
}

// ---------------------------------------------------------------------------------------------------------
// Random bits for stochastic rounding: Philox (host/philox.h) with counter word 3 = 1, so these draws never
// coincide with dropout's (which use word 3 = 0). Element `index` under `seed` gets 32 bits; reproducible on
// host and device, in any order.
__host__ __device__ inline uint32_t rounding_bits(uint64_t seed, uint64_t index) {
  const uint64_t q = index >> 2;
  llm::Philox4 ctr = {{(uint32_t)q, (uint32_t)(q >> 32), 0u, 1u}};
  llm::Philox4 r = llm::philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
  return r.v[index & 3];
}

// fp32 -> bf16 with stochastic rounding: the result is one of the two bf16 values bracketing x, the upper
// (in magnitude) one with probability (dropped low 16 bits) / 2^16, so E[result] == x. `bits`: 32 random bits.
__host__ __device__ inline __nv_bfloat16 stochastic_round_bf16(float x, uint32_t bits) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return __float2bfloat16(x);  // inf / NaN: nothing to round
  const uint32_t low = u & 0xffffu, threshold = bits >> 16;
  uint32_t hi = u >> 16;
  if (threshold < low) hi += 1;  // round away from zero (carries into the exponent correctly)
  __nv_bfloat16_raw raw;
  raw.x = (unsigned short)hi;
  return __nv_bfloat16(raw);
}

// Store an fp32 value into floatX: exact for float, stochastic rounding for bf16.
template <class T> __host__ __device__ inline T store_rounded(float x, uint32_t bits);
template <> __host__ __device__ inline float store_rounded<float>(float x, uint32_t) { return x; }
template <> __host__ __device__ inline __nv_bfloat16 store_rounded<__nv_bfloat16>(float x, uint32_t bits) {
  return stochastic_round_bf16(x, bits);
}

// ---------------------------------------------------------------------------------------------------------
// Trivial kernels: zero fill and casts (grid-stride, scalar: used off the hot path).

template <class T>
__global__ void fill_zero_kernel(T* out, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    out[i] = from_float<T>(0.0f);
}

template <class Tout, class Tin>
__global__ void cast_kernel(Tout* out, const Tin* inp, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    out[i] = from_float<Tout>(to_float<Tin>(inp[i]));
}

// Grid size for a grid-stride loop over n items: enough blocks to cover n, capped (the loop does the rest).
inline int grid_stride_blocks(size_t n, int block_size, int max_blocks = 4096) {
  size_t blocks = (n + block_size - 1) / block_size;
  if (blocks < 1) blocks = 1;
  return (int)(blocks < (size_t)max_blocks ? blocks : (size_t)max_blocks);
}

template <class T>
void fill_zero(T* out, size_t n, cudaStream_t stream) {
  const int block_size = 256;
  launch_kernel(fill_zero_kernel<T>, dim3(grid_stride_blocks(n, block_size)), dim3(block_size), 0, stream, out, n);
  CUDA_CHECK(cudaGetLastError());
}

template <class Tout, class Tin>
void cast(Tout* out, const Tin* inp, size_t n, cudaStream_t stream) {
  const int block_size = 256;
  launch_kernel(cast_kernel<Tout, Tin>, dim3(grid_stride_blocks(n, block_size)), dim3(block_size), 0, stream, out,
                inp, n);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kern
