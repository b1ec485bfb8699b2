// gemm.cpp — packed, cache-blocked, register-tiled C (+)= A·B (see gemm.h for why).
//
// Structure (BLIS-style, GotoBLAS loop order with the roles of A and B swapped for row-major C):
//   threads split C into column ranges (when N ≥ M) or row ranges, each thread then runs alone:
//   for jc in its columns, NC at a time:                    B block (KC×NC, 768 KB) stays in L2
//     for pc in K, KC at a time:                            K blocks in order: fixed summation order
//       pack B[pc.., jc..] into NR-column micro-panels      (kc × NR each, contiguous, zero padded)
//       for ic in its rows, MC at a time:
//         pack A[ic.., pc..] into MR-row micro-panels       (kc × MR each; or once for the whole call)
//         for each A micro-panel (MR rows):                 stays in L1 (8 KB) while ...
//           for each B micro-panel (NR columns):            ... the B micro-panels stream from L2
//             micro-kernel: MR×NR block of C in registers, kc rank-1 updates, then C (+)= block
// Packing makes every operand layout (X·Wᵀ, dY·W, dYᵀ·X) look the same to the micro-kernel: the kernel
// reads both panels strictly sequentially, so the prefetchers keep it fed and no L1 set is over-used.
// The micro-kernel is MR=8 rows × NR=48 columns (24 AVX-512 accumulators): per k, 3 vector loads of B,
// 8 broadcasts of A and 24 FMAs. 48 divides every GPT-2 width (768·{1,3,4}, 50304) and 8 divides B·T,
// so no edge tiles are wasted on those shapes.
#include "cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace ref {
namespace {

constexpr int MR = 8;          // register tile rows (A micro-panel width)
constexpr int NV = 3;          // 16-float vectors per tile row
constexpr int NR = 16 * NV;    // register tile columns (B micro-panel width)
constexpr int KC = 256;            // K block: A micro-panel 8 KB (L1), B micro-panel 48 KB (streams from L2)
constexpr int NC = 768;            // columns per B block (multiple of NR): KC×NC = 768 KB in L2
constexpr int MC = 1024;       // rows per A block when A is packed block by block (multiple of MR)
constexpr int kPrefetch = 12;  // B micro-panel prefetch distance in k steps (8..16 measure alike)
constexpr size_t kAWholeMax = (size_t)1 << 20;  // pack A once per call when it is at most 4 MB

// 16-wide float vector (GCC/Clang vector extension; one zmm register with AVX-512). aligned(4) + may_alias make
// a plain dereference an unaligned, aliasing-safe load/store.
typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
inline v16 load16(const float* p) { return *reinterpret_cast<const v16*>(p); }
inline void store16(float* p, v16 v) { *reinterpret_cast<v16*>(p) = v; }

int round_up(int x, int q) { return (x + q - 1) / q * q; }

// A per-thread packing buffer, 64-byte aligned, kept between calls (a fresh large allocation would be
// mmap'ed and page-faulted every time).
struct PackBuffer {
  std::vector<float> v;
  float* get(size_t n) {
    if (v.size() < n + 16) v.resize(n + 16);
    return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~(uintptr_t)63);
  }
};

// ---------------------------------------------------------------------------------------------------------
// Packing. A source block X(r, k) = src[r*s_r + k*s_k] (r < n rows, k < kc) becomes micro-panels of W rows:
//   dst[(r/W)*kc*W + k*W + r%W],  rows n..round_up(n, W)-1 zero (the kernel always computes full tiles).
// For A: r = row i of A (W = MR). For B: r = column j of B (W = NR).

// Rows contiguous (s_r == 1): each k contributes W consecutive floats — a plain copy. G panels are copied
// together so that every source row k is read G·W floats at a time, and the rows kPackAhead steps ahead are
// prefetched: the source rows are usually a page or more apart (W in dX = dY·W, dYᵀ in dW = dYᵀ·X), which
// defeats the hardware prefetchers; panel by panel, short strided reads were latency-bound (about a third
// of the dX GEMM's time went to packing W). When a panel row is whole cache lines (W = 48) all panels are
// copied together (each source row is read once, sequentially); with W = 8 (half lines) 8 panels at a time,
// so each destination line is completed by the next k while it is still in L1.
constexpr int kPackAhead = 8;
template <int W>
void pack_rows_contiguous(float* __restrict dst, const float* __restrict src, size_t s_k, int n, int kc) {
  const int full = n / W;  // complete panels
  const int G = W % 16 == 0 ? std::max(full, 1) : std::max(1, 64 / W);
  for (int p0 = 0; p0 < full; p0 += G) {
    const int g = std::min(G, full - p0);
    for (int k = 0; k < kc; k++) {
      const float* __restrict sk = src + (size_t)k * s_k + (size_t)p0 * W;
      if (k + kPackAhead < kc)
        for (int l = 0; l < g * W; l += 16) __builtin_prefetch(sk + kPackAhead * s_k + l, 0, 3);
      for (int q = 0; q < g; q++) {
        float* __restrict dk = dst + (size_t)(p0 + q) * kc * W + (size_t)k * W;
        const float* __restrict sq = sk + q * W;
#pragma GCC unroll 4
        for (int v = 0; v + 16 <= W; v += 16) store16(dk + v, load16(sq + v));
        if (W % 16 == 8) {  // W == 8: one half vector
#pragma GCC unroll 8
          for (int r = W - 8; r < W; r++) dk[r] = sq[r];
        }
      }
    }
  }
  if (full * W < n) {  // last, partial panel: zero padded
    const int w = n - full * W;
    float* d = dst + (size_t)full * kc * W;
    const float* s = src + (size_t)full * W;
    for (int k = 0; k < kc; k++)
      for (int r = 0; r < W; r++) d[(size_t)k * W + r] = r < w ? s[(size_t)k * s_k + r] : 0.0f;
  }
}

// Any strides: element by element.
template <int W>
void pack_generic(float* dst, const float* src, size_t s_r, size_t s_k, int n, int kc) {
  for (int p = 0; p * W < n; p++) {
    float* d = dst + (size_t)p * kc * W;
    for (int k = 0; k < kc; k++)
      for (int r = 0; r < W; r++) {
        const int row = p * W + r;
        d[(size_t)k * W + r] = row < n ? src[(size_t)row * s_r + (size_t)k * s_k] : 0.0f;
      }
  }
}

#ifdef __AVX512F__
// In-register transpose of 16 rows × 16 floats: on return r[j] holds column j of the input.
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; i++) {  // interleave 32-bit elements of row pairs (within 128-bit lanes)
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {  // interleave 64-bit pairs: u[4i+c] lane l = column 4l+c of rows 4i..4i+3
    const __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  for (int c = 0; c < 4; c++) {  // gather the four 128-bit lanes of column 4l+c from u[c], u[4+c], u[8+c], u[12+c]
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);
    const __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
    r[c] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
    r[12 + c] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
  }
}
#endif

// k contiguous (s_k == 1): each source row is contiguous along k, the panel wants it across — a transpose,
// done in 16×16 register blocks (W is 8 or a multiple of 16).
template <int W>
void pack_transpose(float* dst, const float* src, size_t s_r, int n, int kc) {
#ifdef __AVX512F__
  static_assert(W == 8 || W % 16 == 0, "16-row blocks must map onto whole panels or panel halves");
  const int npad = round_up(n, W);
  for (int r0 = 0; r0 < npad; r0 += 16) {
    const int rows_valid = std::max(0, std::min(16, n - r0));
    for (int k0 = 0; k0 < kc; k0 += 16) {
      const int kn = std::min(16, kc - k0);
      const __mmask16 kmask = (__mmask16)((1u << kn) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; i++) {
        const float* row = src + (size_t)(r0 + i) * s_r + k0;
        if (i < rows_valid && k0 + 16 * kPackAhead / 2 < kc) __builtin_prefetch(row + 16 * kPackAhead / 2, 0, 3);
        r[i] = i < rows_valid ? _mm512_maskz_loadu_ps(kmask, row) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int kk = 0; kk < kn; kk++) {
        const int k = k0 + kk;
        if (W % 16 == 0) {
          store16(dst + (size_t)(r0 / W) * kc * W + (size_t)k * W + r0 % W, (v16)r[kk]);
        } else {  // W == 8: rows r0..r0+7 and r0+8..r0+15 belong to two consecutive panels
          _mm256_storeu_ps(dst + (size_t)(r0 / W) * kc * W + (size_t)k * W, _mm512_castps512_ps256(r[kk]));
          if (r0 + 8 < npad)
            _mm256_storeu_ps(dst + (size_t)(r0 / W + 1) * kc * W + (size_t)k * W, _mm512_extractf32x8_ps(r[kk], 1));
        }
      }
    }
  }
#else
  pack_generic<W>(dst, src, s_r, 1, n, kc);
#endif
}

template <int W>
void pack(float* dst, const float* src, size_t s_r, size_t s_k, int n, int kc) {
  if (s_r == 1) pack_rows_contiguous<W>(dst, src, s_k, n, kc);
  else if (s_k == 1) pack_transpose<W>(dst, src, s_r, n, kc);
  else pack_generic<W>(dst, src, s_r, s_k, n, kc);
}

// ---------------------------------------------------------------------------------------------------------
// Micro-kernel: C[0:mr, 0:nr] (+)= Σ_k a[k*MR + i] · b[k*NR + j] over kc steps, with an MR×NR block of
// accumulators in registers. load_c: add to C (else overwrite); bias (only when !load_c): added per column.
void micro_kernel(int kc, const float* __restrict a, const float* __restrict b, float* c, size_t ldc, int mr, int nr,
                  bool load_c, const float* bias) {
  v16 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[i][v] = v16{};
  // the C block is read and written after the k loop: start fetching it now
  for (int i = 0; i < mr; i++)
    for (int v = 0; v < NV; v++) __builtin_prefetch(c + (size_t)i * ldc + 16 * v, 1);
  for (int k = 0; k < kc; k++) {
    // the B micro-panel streams from L2: ask for its lines kPrefetch steps ahead (measured: ~10-25% faster)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) __builtin_prefetch(b + kPrefetch * NR + 16 * v, 0, 3);
    v16 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = load16(b + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      const float ai = a[i];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[i][v] += ai * bv[v];
    }
    a += MR;
    b += NR;
  }
  if (mr == MR && nr == NR) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      float* ci = c + (size_t)i * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        v16 r = acc[i][v];
        if (load_c) r = load16(ci + 16 * v) + r;
        else if (bias) r = load16(bias + 16 * v) + r;
        store16(ci + 16 * v, r);
      }
    }
  } else {  // edge tile: through a scratch block, only the valid part
    float tmp[MR][NR];
    for (int i = 0; i < MR; i++)
      for (int v = 0; v < NV; v++) store16(&tmp[i][16 * v], acc[i][v]);
    for (int i = 0; i < mr; i++) {
      float* ci = c + (size_t)i * ldc;
      for (int j = 0; j < nr; j++) {
        if (load_c) ci[j] = ci[j] + tmp[i][j];
        else ci[j] = bias ? bias[j] + tmp[i][j] : tmp[i][j];
      }
    }
  }
}

struct GemmArgs {
  float* C;
  size_t ldc;
  MatView A, B;
  int K;
  bool accumulate;
  const float* bias;
};

// One thread's share: C rows [m0, m1) × columns [n0, n1), the whole K.
void gemm_block(const GemmArgs& g, int m0, int m1, int n0, int n1) {
  thread_local PackBuffer abuf, bbuf;
  const int K = g.K, mt = m1 - m0, mt_pad = round_up(mt, MR);
  float* Bp = bbuf.get((size_t)KC * NC);
  // With several column blocks every one of them needs all of A: pack it once when it is small (M = B·T rows).
  const bool a_whole = (size_t)mt_pad * K <= kAWholeMax && n1 - n0 > NC;
  float* Ap = abuf.get(a_whole ? (size_t)mt_pad * (K + KC) : (size_t)MC * KC);
  auto pack_a = [&](float* dst, int i0, int mc, int k0, int kc) {
    pack<MR>(dst, g.A.p + (size_t)i0 * g.A.rs + (size_t)k0 * g.A.cs, g.A.rs, g.A.cs, mc, kc);
  };
  if (a_whole)
    for (int pc = 0; pc < K; pc += KC) pack_a(Ap + (size_t)(pc / KC) * KC * mt_pad, m0, mt, pc, std::min(KC, K - pc));
  const int mc_step = a_whole ? mt : MC;
  for (int jc = n0; jc < n1; jc += NC) {
    const int nc = std::min(NC, n1 - jc);
    for (int pc = 0; pc < K; pc += KC) {
      const int kc = std::min(KC, K - pc);
      pack<NR>(Bp, g.B.p + (size_t)pc * g.B.rs + (size_t)jc * g.B.cs, g.B.cs, g.B.rs, nc, kc);
      const bool load_c = g.accumulate || pc > 0;
      const float* bias = !load_c && g.bias ? g.bias + jc : nullptr;
      for (int ic = m0; ic < m1; ic += mc_step) {
        const int mc = std::min(mc_step, m1 - ic);
        const float* ablk = Ap + (size_t)(pc / KC) * KC * mt_pad;
        if (!a_whole) {
          pack_a(Ap, ic, mc, pc, kc);
          ablk = Ap;
        }
        for (int ir = 0; ir < mc; ir += MR) {
          const float* ap = ablk + (size_t)(ir / MR) * kc * MR;
          float* crow = g.C + (size_t)(ic + ir) * g.ldc + jc;
          for (int jr = 0; jr < nc; jr += NR)
            micro_kernel(kc, ap, Bp + (size_t)(jr / NR) * kc * NR, crow + jr, g.ldc, std::min(MR, mc - ir),
                         std::min(NR, nc - jr), load_c, bias ? bias + jr : nullptr);
        }
      }
    }
  }
}

}  // namespace

void gemm(float* C, size_t ldc, MatView A, MatView B, int M, int N, int K, bool accumulate, const float* bias) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = bias ? bias[j] : 0.0f;
    return;
  }
  const GemmArgs g{C, ldc, A, B, K, accumulate, accumulate ? nullptr : bias};
  // Threads split the larger of M and N (the other operand is then packed by every thread, which is cheap
  // because it is the smaller one). Splits fall on tile boundaries, so no two threads write one cache line
  // of C (for 64-byte aligned rows) and the tiles seen by the kernel are the same for any thread count.
  const bool split_n = N >= M;
  const bool parallel = (size_t)M * N * K >= ((size_t)1 << 22);
#pragma omp parallel if(parallel)
  {
    const int T = omp_get_num_threads(), t = omp_get_thread_num();
    if (split_n) {
      const int tiles = (N + NR - 1) / NR;
      const int n0 = (int)((long)tiles * t / T) * NR, n1 = std::min(N, (int)((long)tiles * (t + 1) / T) * NR);
      if (n0 < n1) gemm_block(g, 0, M, n0, n1);
    } else {
      const int tiles = (M + MR - 1) / MR;
      const int m0 = (int)((long)tiles * t / T) * MR, m1 = std::min(M, (int)((long)tiles * (t + 1) / T) * MR);
      if (m0 < m1) gemm_block(g, m0, m1, 0, N);
    }
  }
}

}  // namespace ref
