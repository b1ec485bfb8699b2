// attention_decode.cuh — KV-cache attention for generation: append k/v rows to the cache, and attention of ONE
// new query over every cached position (the decode step of gpu/generate.cuh).
//
// Why a separate kernel: attention.cuh owns one query row per thread, which for a single query would run one
// thread per head. Decoding instead splits the KEYS of one query across a block: thread j streams cached keys
// j, j + NT, j + 2·NT, ... with an online softmax (running max m_j, sum l_j, accumulator acc_j[HS]); the block
// then merges the NT partial states in a fixed order (deterministic):
//   M = max_j m_j,   l = Σ_j l_j·exp(m_j − M),   out[d] = Σ_j acc_j[d]·exp(m_j − M) / l.
// No causal mask is needed: the cache holds exactly the positions 0..len−1 the query may see (len includes the
// query's own k/v, appended first). Only rows < len are read, so stale rows beyond it never matter.
// Layout: cache (maxT, C) per layer for k and for v (heads side by side in C, as in the qkv row); the query is
// the q third of a qkv (3C) row; out (C). fp32 math whatever the storage type floatX.
// Sizes: NT = 64 threads (32 for hs 128) keep the merge buffer at 16 KiB of shared memory.
#pragma once
#include <cmath>

#include "cuda_cpu/compat.cuh"
#include "kernels/attention.cuh"  // attention_check_shape, attention_dispatch_hs
#include "kernels/common.cuh"

namespace kern {

template <int HS> struct DecodeThreads { static constexpr int value = HS > 64 ? 32 : 64; };

// kcache[pos + i] = k part of qkv row i, vcache[pos + i] = v part, for i < n. One thread per (row, channel).
template <typename floatX>
__global__ void kv_cache_append_kernel(floatX* kcache, floatX* vcache, const floatX* qkv, int n, int pos, int C) {
  const size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (idx >= (size_t)n * C) return;
  const size_t i = idx / C, c = idx % C;
  kcache[(pos + i) * C + c] = qkv[i * 3 * C + C + c];
  vcache[(pos + i) * C + c] = qkv[i * 3 * C + 2 * C + c];
}

// grid NH blocks (one head each), block NT threads.
template <int HS, typename floatX>
__global__ void __launch_bounds__(DecodeThreads<HS>::value)
    attention_decode_kernel(floatX* out, const floatX* qkv, const floatX* kcache, const floatX* vcache, int len, int C,
                            float scale) {
  constexpr int NT = DecodeThreads<HS>::value;
  __shared__ float q_s[HS], m_s[NT], l_s[NT], acc_s[NT][HS];
  const int h = blockIdx.x, j = threadIdx.x;
  for (int d = j; d < HS; d += NT) q_s[d] = to_float(qkv[h * HS + d]);
  __syncthreads();
  // this thread's keys: online softmax over t = j, j + NT, ...
  float m = -INFINITY, l = 0.0f, acc[HS];
  for (int d = 0; d < HS; d++) acc[d] = 0.0f;
  for (int t = j; t < len; t += NT) {
    const floatX* k = kcache + (size_t)t * C + h * HS;
    float s = 0.0f;
    for (int d = 0; d < HS; d++) s += q_s[d] * to_float(k[d]);
    s *= scale;
    if (s > m) {  // new running max: rescale what was accumulated
      const float corr = expf(m - s);
      l *= corr;
      for (int d = 0; d < HS; d++) acc[d] *= corr;
      m = s;
    }
    const float p = expf(s - m);
    l += p;
    const floatX* v = vcache + (size_t)t * C + h * HS;
    for (int d = 0; d < HS; d++) acc[d] += p * to_float(v[d]);
  }
  m_s[j] = m;  // -inf (and l = 0) for a thread that saw no key
  l_s[j] = l;
  for (int d = 0; d < HS; d++) acc_s[j][d] = acc[d];
  __syncthreads();
  // merge, in thread order: every thread computes M and l (NT reads), then owns output channels d = j, j + NT, ...
  float M = -INFINITY;
  for (int r = 0; r < NT; r++) M = fmaxf(M, m_s[r]);
  float L = 0.0f;
  for (int r = 0; r < NT; r++) L += m_s[r] == -INFINITY ? 0.0f : l_s[r] * expf(m_s[r] - M);
  const float inv = 1.0f / L;
  for (int d = j; d < HS; d += NT) {
    float o = 0.0f;
    for (int r = 0; r < NT; r++)
      if (m_s[r] != -INFINITY) o += acc_s[r][d] * expf(m_s[r] - M);
    out[h * HS + d] = from_float<floatX>(o * inv);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Host launchers.

// Appends n qkv rows (n, 3C) at cache positions pos..pos+n-1 of kcache/vcache (maxT, C).
template <typename floatX>
void kv_cache_append(floatX* kcache, floatX* vcache, const floatX* qkv, int n, int pos, int maxT, int C,
                     cudaStream_t stream) {
  if (n <= 0 || pos < 0 || pos + n > maxT || C <= 0)
    llm::fail("kv_cache_append: rows ", pos, "..", pos + n, " do not fit a cache of ", maxT, " positions");
  const size_t total = (size_t)n * C;
  launch_kernel(kv_cache_append_kernel<floatX>, dim3((unsigned)CEIL_DIV(total, (size_t)256)), dim3(256), 0, stream,
                kcache, vcache, qkv, n, pos, C);
  CUDA_CHECK(cudaGetLastError());
}

// out (C) = softmax(q·Kᵀ/sqrt(hs)) V per head, q = the q third of qkv (3C), K/V = cache rows 0..len-1 (len >= 1).
template <typename floatX>
void attention_decode(floatX* out, const floatX* qkv, const floatX* kcache, const floatX* vcache, int len, int C,
                      int NH, cudaStream_t stream) {
  attention_check_shape("attention_decode", 1, len, C, NH);
  const float scale = 1.0f / sqrtf((float)(C / NH));
  attention_dispatch_hs(C / NH, [&](auto hs) {
    constexpr int HS = decltype(hs)::value;
    launch_kernel(attention_decode_kernel<HS, floatX>, dim3(NH), dim3(DecodeThreads<HS>::value), 0, stream, out, qkv,
                  kcache, vcache, len, C, scale);
  });
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kern
