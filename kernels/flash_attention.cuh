// flash_attention.cuh — causal multi-head self-attention on the tensor cores (FlashAttention-2 forward and
// backward), bf16 in/out, fp32 softmax statistics, head size 64 or 128, any T.
//
// Why: the portable kernels/attention.cuh runs one thread per query row in fp32 FFMA; at GPT-2 shapes attention
// then dominates a bf16 training step. These kernels do the two matmuls of each direction with mma.sync
// (kernels/mma.cuh: bf16 operands, fp32 accumulation) on 64×64 tiles staged through shared memory by cp.async.
// On the CUDA-on-CPU layer the same code runs with the layer's exact PTX fragment layouts, so CI tests it.
//
// Shapes and layout (same contract as kern::attention_forward/backward): q, k, v are read straight from the fused
// qkv (B, T, 3C) rows (head h at columns h·hs of each third); out (B, T, C) bf16; lse (B, NH, T) fp32 =
// log Σ_j exp(q·k_j·scale) (natural log, scale = 1/sqrt(hs)); dqkv (B, T, 3C) is OVERWRITTEN.
//
// Forward (grid: query tiles of 64 rows × B·NH heads, 4 warps, warp w owns query rows 16w..16w+15 of the tile):
//   Q tile -> registers (A fragments) once; K/V tiles double-buffered (the next tile's cp.async is in flight while
//   the current one is used); S = Q·K^T (fp32), causal/tail mask, online softmax (running max m and per-lane
//   partial sums l, rows reduced over the 4 lanes of a quad), P rounded to bf16 as the A operand of O += P·V.
//   Query tiles are visited longest-first (the last tile has the most keys).
// Backward (deterministic, no atomics):
//   1. D_i = dout_i · out_i (fp32, from the bf16 forward output) -> scratch (B, NH, T);
//   2. dq kernel: per query tile, loop over key tiles j ≤ i: S, dP = dO·V^T, P = exp(S·scale − lse),
//      dS = P ∘ (dP − D), dQ += dS·K;
//   3. dkv kernel: per key tile, loop over query tiles i ≥ j (transposed products): S^T = K·Q^T, dP^T = V·dO^T,
//      dV += W^T·dO (W = P after dropout), dK += dS^T·Q.
//   Each dq/dk/dv element is summed by exactly one thread in a fixed order: bitwise reproducible.
// Dropout on the attention weights reproduces ref::attention_forward's mask exactly: element index
// ((b·NH+h)·T+i)·T+j in drop.stream (host/philox.h), kept weights scaled by 1/(1−p); the softmax normaliser uses
// the undropped probabilities; in the backward, dP is masked and scaled the same way (D = dout·out already is
// Σ_j P_ij·dP_ij with the dropped dP).
// Tails: rows past T are loaded as zeros (cp.async src-size 0) and never stored; keys past T are masked (key > query
// for every stored query); in the backward, queries past T get lse = +inf (P = 0). T = 1 works.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda_cpu/compat.cuh"
#include "host/error.h"
#include "host/philox.h"
#include "kernels/common.cuh"
#include "kernels/mma.cuh"

// Loops over register arrays must be fully unrolled under nvcc (else the arrays go to local memory); g++ ignores it.
#ifdef __CUDACC__
#define FLASH_UNROLL _Pragma("unroll")
#else
#define FLASH_UNROLL
#endif

namespace kern {

namespace flash {

using bf16 = __nv_bfloat16;
constexpr int kWarps = 4, kThreads = 32 * kWarps;
constexpr int kTile = 64;  // query rows per block (16 per warp) and keys per tile
constexpr float kLog2e = 1.4426950408889634f;

// Shared-memory row pitch in bf16: HS + 8 (16 bytes of padding) keeps rows 16-byte aligned and moves consecutive
// rows to different banks, so the 8 row addresses of one ldmatrix matrix hit 8 different 16-byte bank groups.
template <int HS> __host__ __device__ constexpr int pitch() { return HS + 8; }

// Rows [r0, r0 + ROWS) of a (rows × HS) slice of a row-major bf16 tensor (row i at base + i·stride) into s[ROWS][pitch]
// by 16-byte cp.async; rows ≥ T are zero-filled (src-size 0: nothing is read; the source pointer stays in range).
template <int HS, int ROWS>
__device__ inline void load_tile_async(bf16* s, const bf16* base, size_t stride, int r0, int T) {
  constexpr int kChunks = HS / 8;  // 16-byte chunks per row
  for (int c = threadIdx.x; c < ROWS * kChunks; c += kThreads) {
    const int r = c / kChunks, ch = c % kChunks, t = r0 + r;
    const bool in = t < T;
    cp_async_cg16(s + r * pitch<HS>() + ch * 8, base + (size_t)(in ? t : 0) * stride + ch * 8, in ? 16 : 0);
  }
}

// A fragment (16×16) of a row-major tile: rows r0..r0+15, columns c0..c0+15. Lane l gives the address of row
// r0 + (l & 15), column c0 + 8·(l >> 4): matrices 0..3 = (rows 0-7, cols 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15)
// = registers a0..a3 of the mma A layout.
template <int LD>
__device__ inline void ld_a(uint32_t (&a)[4], const bf16* s, int r0, int c0, int lane) {
  ldmatrix_x4(a, s + (r0 + (lane & 15)) * LD + c0 + 8 * (lane >> 4));
}
// B fragments of two n-tiles (n0..n0+7 -> b[0..1], n0+8..n0+15 -> b[2..3]) for k = k0..k0+15, from a tile stored
// [n][k] (B = X^T, e.g. K in Q·K^T): no transpose; lane l: row n0 + (l & 7) + 8·(l >> 4), column k0 + 8·((l >> 3) & 1).
template <int LD>
__device__ inline void ld_b_nk(uint32_t (&b)[4], const bf16* s, int n0, int k0, int lane) {
  ldmatrix_x4(b, s + (n0 + (lane & 7) + 8 * (lane >> 4)) * LD + k0 + 8 * ((lane >> 3) & 1));
}
// The same from a tile stored [k][n] (B = X, e.g. V in P·V): .trans; lane l: row k0 + (l & 7) + 8·((l >> 3) & 1),
// column n0 + 8·(l >> 4).
template <int LD>
__device__ inline void ld_b_kn(uint32_t (&b)[4], const bf16* s, int k0, int n0, int lane) {
  ldmatrix_x4_trans(b, s + (k0 + (lane & 7) + 8 * ((lane >> 3) & 1)) * LD + n0 + 8 * (lane >> 4));
}
// d0 += a·b(n-tile 0), d1 += a·b(n-tile 1).
__device__ inline void mma_pair(float (&d0)[4], float (&d1)[4], const uint32_t (&a)[4], const uint32_t (&b)[4]) {
  const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
  mma_bf16_16816(d0, a, b0, d0);
  mma_bf16_16816(d1, a, b1, d1);
}
// The accumulators of n-tiles 2k and 2k+1 (C layout: rows g, g+8; columns 2t, 2t+1 of each) as the A fragment of
// k-step k of the next product (A layout: a0 = row g cols 2t.. of the first 8 columns, a1 = row g+8, a2/a3 = the
// next 8 columns): the FlashAttention register reuse, no shuffle needed.
__device__ inline void acc_to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
  a[0] = pack_bf16x2(c0[0], c0[1]);
  a[1] = pack_bf16x2(c0[2], c0[3]);
  a[2] = pack_bf16x2(c1[0], c1[1]);
  a[3] = pack_bf16x2(c1[2], c1[3]);
}
// One 4-byte store of two bf16 (p must be 4-byte aligned: even element offsets of 16-byte aligned rows).
__device__ inline void store_u32(bf16* p, uint32_t v) {
#ifdef __CUDACC__
  *reinterpret_cast<uint32_t*>(p) = v;  // one STG.32
#else
  memcpy(static_cast<void*>(p), &v, 4);
#endif
}
// Sum / max over the 4 lanes of a quad (the lanes that hold one accumulator row).
__device__ inline float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}
__device__ inline float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

// llm::dropout_keep (host/philox.h) with the same mapping — counter (q, q >> 32, stream, 0) with q = index >> 2,
// word index & 3, keep iff its 24-bit uniform >= p — but the word picked by selects instead of a dynamically
// indexed array (which nvcc places in local memory). Called only when d.p > 0.
__device__ inline bool dropout_keep(const llm::DropoutSpec& d, uint64_t index) {
  const uint64_t q = index >> 2;
  const llm::Philox4 r =
      llm::philox4x32_10(llm::Philox4{{(uint32_t)q, (uint32_t)(q >> 32), d.stream, 0u}}, (uint32_t)d.seed,
                         (uint32_t)(d.seed >> 32));
  const unsigned k = (unsigned)index & 3u;
  const uint32_t word = k == 0 ? r.v[0] : k == 1 ? r.v[1] : k == 2 ? r.v[2] : r.v[3];
  return llm::uniform_from_u32(word) >= d.p;
}

// The two score-shaped products of a backward kernel, sharing one loop over the head dimension: for the warp's 16
// rows (row0.. of the row-major tiles sA1, sA2) and NT·8 rows of the row-major tiles B1, B2,
//   x = A1·B1^T, y = A2·B2^T   (16 × NT·8, fp32, overwritten).
// dq kernel: (Q, dO) against (K, V) -> S, dP; dkv kernel: (K, V) against (Q, dO) -> S^T, dP^T.
template <int LD, int NT, int KS>
__device__ inline void two_products(float (&x)[NT][4], float (&y)[NT][4], const bf16* sA1, const bf16* sA2, int row0,
                                    const bf16* B1, const bf16* B2, int lane) {
  FLASH_UNROLL
  for (int j = 0; j < NT; j++)
    FLASH_UNROLL
    for (int e = 0; e < 4; e++) x[j][e] = y[j][e] = 0.0f;
  FLASH_UNROLL
  for (int kk = 0; kk < KS; kk++) {
    uint32_t a1[4], a2[4];
    ld_a<LD>(a1, sA1, row0, kk * 16, lane);
    ld_a<LD>(a2, sA2, row0, kk * 16, lane);
    FLASH_UNROLL
    for (int np = 0; np < NT / 2; np++) {
      uint32_t b1[4], b2[4];
      ld_b_nk<LD>(b1, B1, np * 16, kk * 16, lane);
      mma_pair(x[2 * np], x[2 * np + 1], a1, b1);
      ld_b_nk<LD>(b2, B2, np * 16, kk * 16, lane);
      mma_pair(y[2 * np], y[2 * np + 1], a2, b2);
    }
  }
}

// Shared memory of each kernel, in bytes.
template <int HS> __host__ __device__ constexpr size_t fwd_smem() { return (size_t)5 * kTile * pitch<HS>() * sizeof(bf16); }  // Q, 2×K, 2×V
template <int HS> __host__ __device__ constexpr size_t dq_smem() { return (size_t)6 * kTile * pitch<HS>() * sizeof(bf16); }   // Q, dO, 2×K, 2×V
// dkv kernel: query tiles of 32 rows (with 64 rows, hs 64 needed 255 registers and spilled on sm_90: dK, dV, S^T
// and dP^T all live in registers).
template <int HS> __host__ __device__ constexpr int dkv_bq() { return 32; }
template <int HS> __host__ __device__ constexpr size_t dkv_smem() {  // K, V, 2×Q, 2×dO, 2×(lse, D)
  return (size_t)(2 * kTile + 4 * dkv_bq<HS>()) * pitch<HS>() * sizeof(bf16) + 4 * dkv_bq<HS>() * sizeof(float);
}

}  // namespace flash

// ---------------------------------------------------------------------------------------------------------------
// Forward. grid (ceil(T/64), B·NH), 128 threads, dynamic smem flash::fwd_smem<HS>().
template <int HS>
__global__ void __launch_bounds__(flash::kThreads)
    flash_attention_forward_kernel(__nv_bfloat16* out, float* lse, const __nv_bfloat16* qkv, int T, int C, int NH,
                                   float scale, llm::DropoutSpec drop) {
  using namespace flash;
  constexpr int LD = pitch<HS>(), NT = kTile / 8, KS = HS / 16;  // n-tiles of S, k-steps over the head
  DYNAMIC_SHARED(bf16, smem);
  bf16* sQ = smem;                  // [64][LD]
  bf16* sK = sQ + kTile * LD;       // [2][64][LD]
  bf16* sV = sK + 2 * kTile * LD;   // [2][64][LD]
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kTile;  // longest tiles first
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const size_t C3 = (size_t)3 * C;
  const bf16* qbase = qkv + (size_t)b * T * C3 + h * HS;  // q row i at qbase + i·3C; k at +C, v at +2C
  const int n_kt = (min(q0 + kTile, T) - 1) / kTile + 1;  // key tiles up to the tile's last (valid) query row
  const float sl2 = scale * kLog2e;                       // exp(x·scale) = exp2(x·sl2)
  const float keep_scale = llm::dropout_scale(drop);
  const int rows[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};  // this lane's query rows (C layout)

  load_tile_async<HS, kTile>(sQ, qbase, C3, q0, T);
  load_tile_async<HS, kTile>(sK, qbase + C, C3, 0, T);
  load_tile_async<HS, kTile>(sV, qbase + 2 * C, C3, 0, T);
  cp_async_commit();

  uint32_t qf[KS][4];  // Q as A fragments, loaded once
  float o[HS / 8][4];  // O accumulator: n-tiles of 8 head dims
  FLASH_UNROLL
  for (int j = 0; j < HS / 8; j++)
    FLASH_UNROLL
    for (int e = 0; e < 4; e++) o[j][e] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // running max (raw score) and this lane's partial sum

  for (int kt = 0; kt < n_kt; kt++) {
    const int cur = kt & 1, k0 = kt * kTile;
    if (kt + 1 < n_kt) {  // prefetch the next K/V tile into the other stage, then wait for all but that group
      load_tile_async<HS, kTile>(sK + (cur ^ 1) * kTile * LD, qbase + C, C3, k0 + kTile, T);
      load_tile_async<HS, kTile>(sV + (cur ^ 1) * kTile * LD, qbase + 2 * C, C3, k0 + kTile, T);
      cp_async_commit();
      cp_async_wait_group<1>();
    } else {
      cp_async_wait_group<0>();
    }
    __syncthreads();  // every thread's copies of this stage (and Q) are visible
    if (kt == 0)
      FLASH_UNROLL
      for (int kk = 0; kk < KS; kk++) ld_a<LD>(qf[kk], sQ, warp * 16, kk * 16, lane);
    const bf16* Ks = sK + cur * kTile * LD;
    const bf16* Vs = sV + cur * kTile * LD;

    float s[NT][4];  // S = Q·K^T for this warp's 16 rows × 64 keys
    FLASH_UNROLL
    for (int j = 0; j < NT; j++)
      FLASH_UNROLL
      for (int e = 0; e < 4; e++) s[j][e] = 0.0f;
    FLASH_UNROLL
    for (int kk = 0; kk < KS; kk++)
      FLASH_UNROLL
      for (int np = 0; np < NT / 2; np++) {
        uint32_t bk[4];
        ld_b_nk<LD>(bk, Ks, np * 16, kk * 16, lane);
        mma_pair(s[2 * np], s[2 * np + 1], qf[kk], bk);
      }
    const bool diag = k0 + kTile - 1 > q0 + warp * 16;  // some key of the tile lies after some row of the warp
    FLASH_UNROLL
    for (int r = 0; r < 2; r++) {
      float mx = -INFINITY;
      FLASH_UNROLL
      for (int j = 0; j < NT; j++)
        FLASH_UNROLL
        for (int e = 2 * r; e < 2 * r + 2; e++) {
          if (diag && k0 + 8 * j + 2 * t + (e & 1) > rows[r]) s[j][e] = -INFINITY;  // causal (and tail) mask
          mx = fmaxf(mx, s[j][e]);
        }
      const float m_new = fmaxf(m[r], quad_max(mx));
      const float base = m_new == -INFINITY ? 0.0f : m_new * sl2;  // (no row is fully masked; guard anyway)
      const float corr = exp2f(m[r] * sl2 - base);                  // rescale of what was accumulated (0 at first)
      m[r] = m_new;
      l[r] *= corr;
      FLASH_UNROLL
      for (int j = 0; j < HS / 8; j++) {
        o[j][2 * r] *= corr;
        o[j][2 * r + 1] *= corr;
      }
      FLASH_UNROLL
      for (int j = 0; j < NT; j++)
        FLASH_UNROLL
        for (int e = 2 * r; e < 2 * r + 2; e++) {
          const float p = exp2f(s[j][e] * sl2 - base);
          l[r] += p;  // the normaliser uses the undropped probabilities
          float w = p;
          if (drop.p > 0.0f) {
            const int key = k0 + 8 * j + 2 * t + (e & 1);
            if (rows[r] < T && key <= rows[r])
              w = flash::dropout_keep(drop, ((uint64_t)bh * T + rows[r]) * T + key) ? p * keep_scale : 0.0f;
          }
          s[j][e] = w;
        }
    }
    FLASH_UNROLL
    for (int kk = 0; kk < NT / 2; kk++) {  // O += P·V: k = the tile's 64 keys, n = head dims
      uint32_t a[4];
      acc_to_a(a, s[2 * kk], s[2 * kk + 1]);
      FLASH_UNROLL
      for (int np = 0; np < HS / 16; np++) {
        uint32_t bv[4];
        ld_b_kn<LD>(bv, Vs, kk * 16, np * 16, lane);
        mma_pair(o[2 * np], o[2 * np + 1], a, bv);
      }
    }
    __syncthreads();  // the next iteration's prefetch overwrites the stage read here
  }

  FLASH_UNROLL
  for (int r = 0; r < 2; r++) {
    const float lsum = quad_sum(l[r]);
    if (rows[r] >= T) continue;
    const float inv = 1.0f / lsum;
    bf16* orow = out + ((size_t)b * T + rows[r]) * C + h * HS;
    FLASH_UNROLL
    for (int j = 0; j < HS / 8; j++) {
      const uint32_t v = pack_bf16x2(o[j][2 * r] * inv, o[j][2 * r + 1] * inv);
      store_u32(orow + 8 * j + 2 * t, v);
    }
    if (t == 0) lse[(size_t)bh * T + rows[r]] = m[r] * scale + logf(lsum);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Backward 1: D_i = dout_i · out_i per (b, h, i) -> Dbuf (B, NH, T). One warp per row; grid ceil(B·T·NH / 4).
template <int HS>
__global__ void __launch_bounds__(flash::kThreads)
    flash_attention_backward_d_kernel(float* Dbuf, const __nv_bfloat16* dout, const __nv_bfloat16* out, int B, int T,
                                      int C, int NH) {
  const int row = blockIdx.x * flash::kWarps + threadIdx.x / 32, lane = threadIdx.x % 32;  // row = (b·T + i)·NH + h
  if (row >= B * T * NH) return;  // whole warps leave together
  const int h = row % NH, bt = row / NH, b = bt / T, i = bt % T;
  const size_t off = (size_t)bt * C + h * HS;
  float d = 0.0f;
  for (int c = lane * 2; c < HS; c += 64) {  // bf16 pairs
    const __nv_bfloat162 x = *reinterpret_cast<const __nv_bfloat162*>(dout + off + c);
    const __nv_bfloat162 y = *reinterpret_cast<const __nv_bfloat162*>(out + off + c);
    d += __bfloat162float(x.x) * __bfloat162float(y.x) + __bfloat162float(x.y) * __bfloat162float(y.y);
  }
  for (int k = 16; k > 0; k >>= 1) d += __shfl_xor_sync(0xffffffffu, d, k);
  if (lane == 0) Dbuf[((size_t)b * NH + h) * T + i] = d;
}

// Backward 2: dq. grid (ceil(T/64), B·NH), 128 threads (warp w: query rows 16w..16w+15), smem flash::dq_smem<HS>().
template <int HS>
__global__ void __launch_bounds__(flash::kThreads)
    flash_attention_backward_dq_kernel(__nv_bfloat16* dqkv, const float* Dbuf, const __nv_bfloat16* dout,
                                       const __nv_bfloat16* qkv, const float* lse, int T, int C, int NH, float scale,
                                       llm::DropoutSpec drop) {
  using namespace flash;
  constexpr int LD = pitch<HS>(), NT = kTile / 8, KS = HS / 16;
  DYNAMIC_SHARED(bf16, smem);
  bf16* sQ = smem;                 // [64][LD]
  bf16* sdO = sQ + kTile * LD;     // [64][LD]
  bf16* sK = sdO + kTile * LD;     // [2][64][LD]
  bf16* sV = sK + 2 * kTile * LD;  // [2][64][LD]
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const size_t C3 = (size_t)3 * C;
  const bf16* qbase = qkv + (size_t)b * T * C3 + h * HS;
  const int n_kt = (min(q0 + kTile, T) - 1) / kTile + 1;
  const float sl2 = scale * kLog2e, keep_scale = llm::dropout_scale(drop);
  const int rows[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  float lse2[2], Di[2];  // lse·log2(e) (+inf past T: P = 0) and D of this lane's rows
  FLASH_UNROLL
  for (int r = 0; r < 2; r++) {
    lse2[r] = rows[r] < T ? lse[(size_t)bh * T + rows[r]] * kLog2e : INFINITY;
    Di[r] = rows[r] < T ? Dbuf[(size_t)bh * T + rows[r]] : 0.0f;
  }

  load_tile_async<HS, kTile>(sQ, qbase, C3, q0, T);
  load_tile_async<HS, kTile>(sdO, dout + (size_t)b * T * C + h * HS, C, q0, T);
  load_tile_async<HS, kTile>(sK, qbase + C, C3, 0, T);
  load_tile_async<HS, kTile>(sV, qbase + 2 * C, C3, 0, T);
  cp_async_commit();

  float dq[HS / 8][4];
  FLASH_UNROLL
  for (int j = 0; j < HS / 8; j++)
    FLASH_UNROLL
    for (int e = 0; e < 4; e++) dq[j][e] = 0.0f;

  for (int kt = 0; kt < n_kt; kt++) {
    const int cur = kt & 1, k0 = kt * kTile;
    if (kt + 1 < n_kt) {
      load_tile_async<HS, kTile>(sK + (cur ^ 1) * kTile * LD, qbase + C, C3, k0 + kTile, T);
      load_tile_async<HS, kTile>(sV + (cur ^ 1) * kTile * LD, qbase + 2 * C, C3, k0 + kTile, T);
      cp_async_commit();
      cp_async_wait_group<1>();
    } else {
      cp_async_wait_group<0>();
    }
    __syncthreads();
    const bf16* Ks = sK + cur * kTile * LD;
    const bf16* Vs = sV + cur * kTile * LD;

    float s[NT][4], dp[NT][4];  // S = Q·K^T and dP = dO·V^T: 16 rows × 64 keys
    two_products<LD, NT, KS>(s, dp, sQ, sdO, warp * 16, Ks, Vs, lane);
    FLASH_UNROLL
    for (int j = 0; j < NT; j++)
      FLASH_UNROLL
      for (int e = 0; e < 4; e++) {  // dS = P ∘ (dP − D), kept in s
        const int r = e >> 1, key = k0 + 8 * j + 2 * t + (e & 1);
        const float p = key > rows[r] ? 0.0f : exp2f(s[j][e] * sl2 - lse2[r]);
        float d = dp[j][e];
        if (drop.p > 0.0f && rows[r] < T && key <= rows[r])
          d = flash::dropout_keep(drop, ((uint64_t)bh * T + rows[r]) * T + key) ? d * keep_scale : 0.0f;
        s[j][e] = p * (d - Di[r]);
      }
    FLASH_UNROLL
    for (int kk = 0; kk < NT / 2; kk++) {  // dQ += dS·K: k = keys, n = head dims
      uint32_t a[4];
      acc_to_a(a, s[2 * kk], s[2 * kk + 1]);
      FLASH_UNROLL
      for (int np = 0; np < HS / 16; np++) {
        uint32_t bk[4];
        ld_b_kn<LD>(bk, Ks, kk * 16, np * 16, lane);
        mma_pair(dq[2 * np], dq[2 * np + 1], a, bk);
      }
    }
    __syncthreads();
  }
  FLASH_UNROLL
  for (int r = 0; r < 2; r++) {
    if (rows[r] >= T) continue;
    bf16* grow = dqkv + ((size_t)b * T + rows[r]) * C3 + h * HS;
    FLASH_UNROLL
    for (int j = 0; j < HS / 8; j++) {
      const uint32_t v = pack_bf16x2(dq[j][2 * r] * scale, dq[j][2 * r + 1] * scale);
      store_u32(grow + 8 * j + 2 * t, v);
    }
  }
}

// Backward 3: dk, dv. grid (ceil(T/64), B·NH), 128 threads (warp w: keys 16w..16w+15 of the tile), smem
// flash::dkv_smem<HS>(). Query tiles of BQ rows from the key tile's first row to T stream through two stages.
template <int HS>
__global__ void __launch_bounds__(flash::kThreads)
    flash_attention_backward_dkv_kernel(__nv_bfloat16* dqkv, const float* Dbuf, const __nv_bfloat16* dout,
                                        const __nv_bfloat16* qkv, const float* lse, int T, int C, int NH, float scale,
                                        llm::DropoutSpec drop) {
  using namespace flash;
  constexpr int LD = pitch<HS>(), BQ = dkv_bq<HS>(), NT = BQ / 8, KS = HS / 16;
  DYNAMIC_SHARED(bf16, smem);
  bf16* sK = smem;                  // [64][LD]
  bf16* sV = sK + kTile * LD;       // [64][LD]
  bf16* sQ = sV + kTile * LD;       // [2][BQ][LD]
  bf16* sdO = sQ + 2 * BQ * LD;     // [2][BQ][LD]
  float* sL = reinterpret_cast<float*>(sdO + 2 * BQ * LD);  // [2][BQ] lse·log2(e), +inf past T
  float* sD = sL + 2 * BQ;                                  // [2][BQ]
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int k0 = blockIdx.x * kTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const size_t C3 = (size_t)3 * C;
  const bf16* qbase = qkv + (size_t)b * T * C3 + h * HS;
  const bf16* dobase = dout + (size_t)b * T * C + h * HS;
  const int n_qt = (T - k0 + BQ - 1) / BQ;  // query tiles from k0 (a multiple of BQ) to T
  const float sl2 = scale * kLog2e, keep_scale = llm::dropout_scale(drop);
  const int keys[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};  // this lane's key rows (C layout)
  auto load_stats = [&](int stage, int qs) {  // lse and D of query rows qs..qs+BQ-1 (plain loads)
    for (int i = threadIdx.x; i < BQ; i += kThreads) {
      const int q = qs + i;
      sL[stage * BQ + i] = q < T ? lse[(size_t)bh * T + q] * kLog2e : INFINITY;
      sD[stage * BQ + i] = q < T ? Dbuf[(size_t)bh * T + q] : 0.0f;
    }
  };

  load_tile_async<HS, kTile>(sK, qbase + C, C3, k0, T);
  load_tile_async<HS, kTile>(sV, qbase + 2 * C, C3, k0, T);
  load_tile_async<HS, BQ>(sQ, qbase, C3, k0, T);
  load_tile_async<HS, BQ>(sdO, dobase, C, k0, T);
  cp_async_commit();
  load_stats(0, k0);

  float dk[HS / 8][4], dv[HS / 8][4];
  FLASH_UNROLL
  for (int j = 0; j < HS / 8; j++)
    FLASH_UNROLL
    for (int e = 0; e < 4; e++) dk[j][e] = dv[j][e] = 0.0f;

  for (int it = 0; it < n_qt; it++) {
    const int cur = it & 1, qs = k0 + it * BQ;
    if (it + 1 < n_qt) {
      load_tile_async<HS, BQ>(sQ + (cur ^ 1) * BQ * LD, qbase, C3, qs + BQ, T);
      load_tile_async<HS, BQ>(sdO + (cur ^ 1) * BQ * LD, dobase, C, qs + BQ, T);
      cp_async_commit();
      load_stats(cur ^ 1, qs + BQ);
      cp_async_wait_group<1>();
    } else {
      cp_async_wait_group<0>();
    }
    __syncthreads();
    const bf16* Qs = sQ + cur * BQ * LD;
    const bf16* dOs = sdO + cur * BQ * LD;
    const float* Ls = sL + cur * BQ;
    const float* Ds = sD + cur * BQ;

    float s[NT][4], dp[NT][4];  // S^T = K·Q^T and dP^T = V·dO^T: 16 keys × BQ queries
    two_products<LD, NT, KS>(s, dp, sK, sV, warp * 16, Qs, dOs, lane);
    FLASH_UNROLL
    for (int j = 0; j < NT; j++)
      FLASH_UNROLL
      for (int e = 0; e < 4; e++) {  // W^T (dropped P^T) into s, dS^T into dp
        const int r = e >> 1, qi = 8 * j + 2 * t + (e & 1), q = qs + qi;
        const float p = q < keys[r] ? 0.0f : exp2f(s[j][e] * sl2 - Ls[qi]);
        float w = p, d = dp[j][e];
        if (drop.p > 0.0f && q < T && q >= keys[r]) {
          const bool keep = flash::dropout_keep(drop, ((uint64_t)bh * T + q) * T + keys[r]);
          w = keep ? p * keep_scale : 0.0f;
          d = keep ? d * keep_scale : 0.0f;
        }
        s[j][e] = w;
        dp[j][e] = p * (d - Ds[qi]);
      }
    FLASH_UNROLL
    for (int kk = 0; kk < NT / 2; kk++) {  // dV += W^T·dO, dK += dS^T·Q: k = queries, n = head dims
      uint32_t aw[4], ads[4];
      acc_to_a(aw, s[2 * kk], s[2 * kk + 1]);
      acc_to_a(ads, dp[2 * kk], dp[2 * kk + 1]);
      FLASH_UNROLL
      for (int np = 0; np < HS / 16; np++) {
        uint32_t bdo[4], bq[4];
        ld_b_kn<LD>(bdo, dOs, kk * 16, np * 16, lane);
        mma_pair(dv[2 * np], dv[2 * np + 1], aw, bdo);
        ld_b_kn<LD>(bq, Qs, kk * 16, np * 16, lane);
        mma_pair(dk[2 * np], dk[2 * np + 1], ads, bq);
      }
    }
    __syncthreads();
  }
  FLASH_UNROLL
  for (int r = 0; r < 2; r++) {
    if (keys[r] >= T) continue;
    bf16* grow = dqkv + ((size_t)b * T + keys[r]) * C3 + h * HS;
    FLASH_UNROLL
    for (int j = 0; j < HS / 8; j++) {
      const uint32_t vk = pack_bf16x2(dk[j][2 * r] * scale, dk[j][2 * r + 1] * scale);
      const uint32_t vv = pack_bf16x2(dv[j][2 * r], dv[j][2 * r + 1]);
      store_u32(grow + C + 8 * j + 2 * t, vk);
      store_u32(grow + 2 * C + 8 * j + 2 * t, vv);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Host API.

// true when the flash path supports this shape/precision (bf16 only, head size 64 or 128); callers error out
// otherwise (the portable kern::attention_* handle every other case).
inline bool flash_attention_supported(int C, int NH, bool is_bf16) {
  return is_bf16 && C > 0 && NH > 0 && C % NH == 0 && (C / NH == 64 || C / NH == 128);
}

namespace flash {
inline void check_args(const char* what, int B, int T, int C, int NH, std::initializer_list<const void*> ptrs) {
  if (B <= 0 || T <= 0 || C <= 0 || NH <= 0 || C % NH != 0)
    llm::fail(what, ": bad shape B=", B, " T=", T, " C=", C, " NH=", NH, " (need C % NH == 0)");
  if (!flash_attention_supported(C, NH, true))
    llm::fail(what, ": head size ", C / NH, " not supported (64 or 128; use the portable attention)");
  if ((long long)B * NH > 65535) llm::fail(what, ": B·NH = ", (long long)B * NH, " exceeds the grid's y limit 65535");
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) llm::fail(what, ": tensors must be 16-byte aligned");
}
template <int HS, class F> void set_smem(F* kernel, size_t bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}
}  // namespace flash

// out (B,T,C), lse (B,NH,T) fp32 <- qkv (B,T,3C). bf16 only.
template <typename floatX>
void flash_attention_forward(floatX* out, float* lse, const floatX* qkv, int B, int T, int C, int NH,
                             const llm::DropoutSpec& drop, cudaStream_t stream) {
  if constexpr (!std::is_same<floatX, __nv_bfloat16>::value) {
    (void)out, (void)lse, (void)qkv, (void)B, (void)T, (void)C, (void)NH, (void)drop, (void)stream;
    llm::fail("flash_attention_forward: bf16 only (fp32 runs use the portable attention)");
  } else {
    flash::check_args("flash_attention_forward", B, T, C, NH, {out, qkv});
    const float scale = 1.0f / sqrtf((float)(C / NH));
    const dim3 grid((T + flash::kTile - 1) / flash::kTile, B * NH);
    auto run = [&](auto hs) {
      constexpr int HS = decltype(hs)::value;
      flash::set_smem<HS>(flash_attention_forward_kernel<HS>, flash::fwd_smem<HS>());
      launch_kernel(flash_attention_forward_kernel<HS>, grid, dim3(flash::kThreads), flash::fwd_smem<HS>(), stream,
                    out, lse, qkv, T, C, NH, scale, drop);
    };
    if (C / NH == 64) run(std::integral_constant<int, 64>()); else run(std::integral_constant<int, 128>());
  }
}

// dqkv (B,T,3C) = gradient of the forward above (overwritten), from dout (B,T,C), qkv, the forward's out and lse.
// scratch: B·NH·T floats (holds D = dout·out per query row between the kernels). bf16 only.
template <typename floatX>
void flash_attention_backward(floatX* dqkv, float* scratch, const floatX* dout, const floatX* qkv, const floatX* out,
                              const float* lse, int B, int T, int C, int NH, const llm::DropoutSpec& drop,
                              cudaStream_t stream) {
  if constexpr (!std::is_same<floatX, __nv_bfloat16>::value) {
    (void)dqkv, (void)scratch, (void)dout, (void)qkv, (void)out, (void)lse, (void)B, (void)T, (void)C, (void)NH;
    (void)drop, (void)stream;
    llm::fail("flash_attention_backward: bf16 only (fp32 runs use the portable attention)");
  } else {
    flash::check_args("flash_attention_backward", B, T, C, NH, {dqkv, dout, qkv, out});
    const float scale = 1.0f / sqrtf((float)(C / NH));
    const dim3 grid((T + flash::kTile - 1) / flash::kTile, B * NH);
    auto run = [&](auto hs) {
      constexpr int HS = decltype(hs)::value;
      const int rows = B * T * NH;
      launch_kernel(flash_attention_backward_d_kernel<HS>, dim3((rows + flash::kWarps - 1) / flash::kWarps),
                    dim3(flash::kThreads), 0, stream, scratch, dout, out, B, T, C, NH);
      flash::set_smem<HS>(flash_attention_backward_dq_kernel<HS>, flash::dq_smem<HS>());
      launch_kernel(flash_attention_backward_dq_kernel<HS>, grid, dim3(flash::kThreads), flash::dq_smem<HS>(), stream,
                    dqkv, (const float*)scratch, dout, qkv, lse, T, C, NH, scale, drop);
      flash::set_smem<HS>(flash_attention_backward_dkv_kernel<HS>, flash::dkv_smem<HS>());
      launch_kernel(flash_attention_backward_dkv_kernel<HS>, grid, dim3(flash::kThreads), flash::dkv_smem<HS>(),
                    stream, dqkv, (const float*)scratch, dout, qkv, lse, T, C, NH, scale, drop);
    };
    if (C / NH == 64) run(std::integral_constant<int, 64>()); else run(std::integral_constant<int, 128>());
  }
}

}  // namespace kern
