// attention.cuh — causal multi-head self-attention, flash-attention style (forward and backward).
//
// Why: the naive path materialises the (B, NH, T, T) attention matrix (llm.c's default: 4·B·NH·T² bytes, the
// largest activation at long T). Here no T×T matrix ever exists in memory:
//   forward : each thread owns one query row; key/value rows stream through shared memory in tiles, and an
//             ONLINE softmax (running max m, running sum l, rescaled accumulator) gives out = Σ p·v / l.
//             The row's logsumexp lse = m + log l (fp32, (B,NH,T)) is saved for backward.
//   backward: probabilities are recomputed from q, k and lse: p = exp(q·k·scale − lse). With
//             D_i = Σ_j p_ij dp_ij (dp_ij = dout_i·v_j after dropout) the softmax gradient is
//             ds_ij = p_ij (dp_ij − D_i). Two kernels avoid atomics (deterministic):
//               dq kernel  : thread owns query i, loops over keys j ≤ i (twice: D_i, then dq_i) -> dq_i, D_i
//               dkv kernel : thread owns key j,   loops over queries i ≥ j -> dk_j, dv_j
// Dropout on the attention weights reproduces ref::attention_forward's mask exactly: element index
// ((b·NH+h)·T+i)·T+j in drop.stream (host/philox.h), kept weights scaled by 1/(1−p); the normaliser l uses the
// undropped probabilities, as in the reference (att is saved before dropout).
// Layout: reads q, k, v straight from the fused qkv (B, T, 3C) rows (head h at columns h·hs of each third), writes
// out (B, T, C) and dqkv (B, T, 3C) (OVERWRITTEN, =). The head size is a template parameter (registers hold a row):
// hs ∈ {8, 16, 32, 64, 128}; other sizes are rejected with an error.
// No tensor cores (portable): this kernel is the reference-quality path; cuDNN SDPA is compared in dev/cuda.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda_cpu/compat.cuh"
#include "host/error.h"
#include "host/philox.h"
#include "kernels/common.cuh"

namespace kern {

// Rows per block (one thread per row) and rows per shared-memory tile; smaller for big heads to stay < 48 KiB.
template <int HS> struct AttentionTile { static constexpr int value = HS > 64 ? 32 : 64; };

// Load rows [r0, r0+TILE) of one third of qkv (which = 0 q, 1 k, 2 v) for head h into dst[TILE][HS] as fp32;
// rows ≥ T read as 0. Cooperative: consecutive threads read consecutive channels.
template <int HS, int TILE, typename floatX>
__device__ inline void attention_load_tile(float (*dst)[HS], const floatX* qkv, int b, int h, int r0, int T, int C,
                                           int which) {
  for (int e = threadIdx.x; e < TILE * HS; e += blockDim.x) {
    const int r = e / HS, d = e % HS, t = r0 + r;
    dst[r][d] = t < T ? to_float(qkv[((size_t)b * T + t) * 3 * C + (size_t)which * C + h * HS + d]) : 0.0f;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Forward. grid (ceil(T/TILE), B·NH), block TILE threads. Query tiles are visited last-first (longest first).
template <int HS, typename floatX>
__global__ void __launch_bounds__(AttentionTile<HS>::value)
    attention_forward_kernel(floatX* out, float* lse, const floatX* qkv, int T, int C, int NH, float scale,
                             llm::DropoutSpec drop) {
  constexpr int TILE = AttentionTile<HS>::value;
  __shared__ float Ks[TILE][HS], Vs[TILE][HS];
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * TILE;
  const int i = q0 + threadIdx.x;  // this thread's query row
  const bool active = i < T;
  const float keep_scale = llm::dropout_scale(drop);
  const uint64_t row_index = (((uint64_t)b * NH + h) * T + i) * T;  // dropout element index of (i, 0)

  float q[HS], acc[HS];
  for (int d = 0; d < HS; d++) {
    q[d] = active ? to_float(qkv[((size_t)b * T + i) * 3 * C + h * HS + d]) : 0.0f;
    acc[d] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int last_key = min(T - 1, q0 + TILE - 1);  // causal: no key beyond the tile's last query
  for (int k0 = 0; k0 <= last_key; k0 += TILE) {
    attention_load_tile<HS, TILE>(Ks, qkv, b, h, k0, T, C, 1);
    attention_load_tile<HS, TILE>(Vs, qkv, b, h, k0, T, C, 2);
    __syncthreads();
    if (active) {
      const int jmax = min(TILE - 1, i - k0);  // keys j = k0 + r with j ≤ i
      for (int r = 0; r <= jmax; r++) {
        float s = 0.0f;
        for (int d = 0; d < HS; d++) s += q[d] * Ks[r][d];
        s *= scale;
        if (s > m) {  // new running max: rescale what was accumulated so far (rare after the first keys)
          const float corr = expf(m - s);
          l *= corr;
          for (int d = 0; d < HS; d++) acc[d] *= corr;
          m = s;
        }
        const float p = expf(s - m);
        l += p;
        float w = p;
        if (drop.p > 0.0f) w = llm::dropout_keep(drop, row_index + k0 + r) ? p * keep_scale : 0.0f;
        for (int d = 0; d < HS; d++) acc[d] += w * Vs[r][d];
      }
    }
    __syncthreads();  // the next tile overwrites Ks/Vs
  }
  if (active) {
    const float inv = 1.0f / l;
    floatX* o = out + ((size_t)b * T + i) * C + h * HS;
    for (int d = 0; d < HS; d++) o[d] = from_float<floatX>(acc[d] * inv);
    lse[((size_t)b * NH + h) * T + i] = m + logf(l);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Backward, dq: thread owns query row i. grid (ceil(T/TILE), B·NH), block TILE.
// Pass 1 recomputes D_i = Σ_j p_ij·dp_ij (dp after dropout) in fp32 and stores it for the dkv kernel; pass 2
// accumulates dq_i. (FlashAttention uses D_i = dout_i·out_i instead, which in bf16 reads the ROUNDED output;
// the recomputed sum is exact to fp32 and costs one more sweep over the keys.)
template <int HS, typename floatX>
__global__ void __launch_bounds__(AttentionTile<HS>::value)
    attention_backward_dq_kernel(floatX* dqkv, float* Dbuf, const floatX* dout, const floatX* qkv, const float* lse,
                                 int T, int C, int NH, float scale, llm::DropoutSpec drop) {
  constexpr int TILE = AttentionTile<HS>::value;
  __shared__ float Ks[TILE][HS], Vs[TILE][HS];
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * TILE;
  const int i = q0 + threadIdx.x;
  const bool active = i < T;
  const float keep_scale = llm::dropout_scale(drop);
  const uint64_t row_index = (((uint64_t)b * NH + h) * T + i) * T;

  float q[HS], dO[HS], dq[HS];
  for (int d = 0; d < HS; d++) {
    q[d] = active ? to_float(qkv[((size_t)b * T + i) * 3 * C + h * HS + d]) : 0.0f;
    dO[d] = active ? to_float(dout[((size_t)b * T + i) * C + h * HS + d]) : 0.0f;
    dq[d] = 0.0f;
  }
  const float lse_i = active ? lse[((size_t)b * NH + h) * T + i] : 0.0f;
  const int last_key = min(T - 1, q0 + TILE - 1);
  float Di = 0.0f;
  for (int pass = 0; pass < 2; pass++) {
    for (int k0 = 0; k0 <= last_key; k0 += TILE) {
      attention_load_tile<HS, TILE>(Ks, qkv, b, h, k0, T, C, 1);
      attention_load_tile<HS, TILE>(Vs, qkv, b, h, k0, T, C, 2);
      __syncthreads();
      if (active) {
        const int jmax = min(TILE - 1, i - k0);
        for (int r = 0; r <= jmax; r++) {
          float s = 0.0f, dp = 0.0f;
          for (int d = 0; d < HS; d++) {
            s += q[d] * Ks[r][d];
            dp += dO[d] * Vs[r][d];
          }
          const float p = expf(s * scale - lse_i);
          if (drop.p > 0.0f) dp = llm::dropout_keep(drop, row_index + k0 + r) ? dp * keep_scale : 0.0f;
          if (pass == 0) {
            Di += p * dp;
          } else {
            const float ds = p * (dp - Di);
            for (int d = 0; d < HS; d++) dq[d] += ds * Ks[r][d];
          }
        }
      }
      __syncthreads();
    }
  }
  if (active) {
    floatX* g = dqkv + ((size_t)b * T + i) * 3 * C + h * HS;
    for (int d = 0; d < HS; d++) g[d] = from_float<floatX>(dq[d] * scale);
    Dbuf[((size_t)b * NH + h) * T + i] = Di;
  }
}

// Backward, dk and dv: thread owns key row j. grid (ceil(T/TILE), B·NH), block TILE. Query tiles i ≥ j stream
// through shared memory together with dout, lse and D (from the dq kernel, which must run first).
template <int HS, typename floatX>
__global__ void __launch_bounds__(AttentionTile<HS>::value)
    attention_backward_dkv_kernel(floatX* dqkv, const float* Dbuf, const floatX* dout, const floatX* qkv,
                                  const float* lse, int T, int C, int NH, float scale, llm::DropoutSpec drop) {
  constexpr int TILE = AttentionTile<HS>::value;
  __shared__ float Qs[TILE][HS], dOs[TILE][HS], lse_s[TILE], D_s[TILE];
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int k0 = blockIdx.x * TILE;  // key tiles in order: the first ones see the most queries
  const int j = k0 + threadIdx.x;
  const bool active = j < T;
  const float keep_scale = llm::dropout_scale(drop);
  const uint64_t head_index = ((uint64_t)b * NH + h) * T;  // dropout index of (i, j) = (head_index + i)·T + j

  float k[HS], v[HS], dk[HS], dv[HS];
  for (int d = 0; d < HS; d++) {
    const size_t kj = ((size_t)b * T + j) * 3 * C + C + h * HS + d;
    k[d] = active ? to_float(qkv[kj]) : 0.0f;
    v[d] = active ? to_float(qkv[kj + C]) : 0.0f;
    dk[d] = dv[d] = 0.0f;
  }
  for (int q0 = k0; q0 < T; q0 += TILE) {
    attention_load_tile<HS, TILE>(Qs, qkv, b, h, q0, T, C, 0);
    for (int e = threadIdx.x; e < TILE * HS; e += blockDim.x) {
      const int r = e / HS, d = e % HS, t = q0 + r;
      dOs[r][d] = t < T ? to_float(dout[((size_t)b * T + t) * C + h * HS + d]) : 0.0f;
    }
    {  // thread r: lse and D of query row q0 + r
      const int t = q0 + threadIdx.x;
      D_s[threadIdx.x] = t < T ? Dbuf[((size_t)b * NH + h) * T + t] : 0.0f;
      lse_s[threadIdx.x] = t < T ? lse[((size_t)b * NH + h) * T + t] : 0.0f;
    }
    __syncthreads();
    if (active) {
      for (int r = max(0, j - q0); r < TILE && q0 + r < T; r++) {  // queries i = q0 + r with i ≥ j
        float s = 0.0f, dp = 0.0f;
        for (int d = 0; d < HS; d++) {
          s += Qs[r][d] * k[d];
          dp += dOs[r][d] * v[d];
        }
        const float p = expf(s * scale - lse_s[r]);
        float w = p;  // the weight v_j got in the forward pass (after dropout)
        if (drop.p > 0.0f) {
          const bool keep = llm::dropout_keep(drop, (head_index + q0 + r) * T + j);
          w = keep ? p * keep_scale : 0.0f;
          dp = keep ? dp * keep_scale : 0.0f;
        }
        const float ds = p * (dp - D_s[r]);
        for (int d = 0; d < HS; d++) {
          dv[d] += w * dOs[r][d];
          dk[d] += ds * Qs[r][d];
        }
      }
    }
    __syncthreads();
  }
  if (active) {
    floatX* g = dqkv + ((size_t)b * T + j) * 3 * C + h * HS;
    for (int d = 0; d < HS; d++) {
      g[C + d] = from_float<floatX>(dk[d] * scale);
      g[2 * C + d] = from_float<floatX>(dv[d]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Host launchers.

inline void attention_check_shape(const char* what, int B, int T, int C, int NH) {
  if (B <= 0 || T <= 0 || C <= 0 || NH <= 0 || C % NH != 0)
    llm::fail(what, ": bad shape B=", B, " T=", T, " C=", C, " NH=", NH, " (need C % NH == 0)");
  const int hs = C / NH;
  if (hs != 8 && hs != 16 && hs != 32 && hs != 64 && hs != 128)
    llm::fail(what, ": head size ", hs, " not supported (8, 16, 32, 64 or 128)");
}

// Calls f(std::integral_constant<int, HS>) for the runtime head size.
template <class F> void attention_dispatch_hs(int hs, F&& f) {
  switch (hs) {
    case 8: f(std::integral_constant<int, 8>()); break;
    case 16: f(std::integral_constant<int, 16>()); break;
    case 32: f(std::integral_constant<int, 32>()); break;
    case 64: f(std::integral_constant<int, 64>()); break;
    default: f(std::integral_constant<int, 128>()); break;
  }
}

// out(B,T,C), lse(B,NH,T) fp32 <- qkv(B,T,3C).
template <typename floatX>
void attention_forward(floatX* out, float* lse, const floatX* qkv, int B, int T, int C, int NH,
                       const llm::DropoutSpec& drop, cudaStream_t stream) {
  attention_check_shape("attention_forward", B, T, C, NH);
  const float scale = 1.0f / sqrtf((float)(C / NH));
  attention_dispatch_hs(C / NH, [&](auto hs) {
    constexpr int HS = decltype(hs)::value, TILE = AttentionTile<HS>::value;
    launch_kernel(attention_forward_kernel<HS, floatX>, dim3((T + TILE - 1) / TILE, B * NH), dim3(TILE), 0, stream,
                  out, lse, qkv, T, C, NH, scale, drop);
  });
  CUDA_CHECK(cudaGetLastError());
}

// dqkv(B,T,3C) = gradient of the forward above (overwritten), from dout(B,T,C), qkv and the forward's lse.
// scratch: B·NH·T floats of device memory (holds D = Σ_j p·dp per query row between the two kernels).
template <typename floatX>
void attention_backward(floatX* dqkv, float* scratch, const floatX* dout, const floatX* qkv, const float* lse,
                        int B, int T, int C, int NH, const llm::DropoutSpec& drop, cudaStream_t stream) {
  attention_check_shape("attention_backward", B, T, C, NH);
  const float scale = 1.0f / sqrtf((float)(C / NH));
  attention_dispatch_hs(C / NH, [&](auto hs) {
    constexpr int HS = decltype(hs)::value, TILE = AttentionTile<HS>::value;
    const dim3 grid((T + TILE - 1) / TILE, B * NH);
    launch_kernel(attention_backward_dq_kernel<HS, floatX>, grid, dim3(TILE), 0, stream, dqkv, scratch, dout, qkv,
                  lse, T, C, NH, scale, drop);
    launch_kernel(attention_backward_dkv_kernel<HS, floatX>, grid, dim3(TILE), 0, stream, dqkv, (const float*)scratch,
                  dout, qkv, lse, T, C, NH, scale, drop);
  });
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kern
