// gemm_old.cpp — the GEMM as it was before the packed/blocked rewrite (commit db22425), kept only so that
// dev/bench_gemm and dev/bench_cpu_step can measure the new one against it in the same run. Not used by the model.
//
// Blocking (BLIS style): K is cut into KC slices and C into MC×NC tiles that threads share out. For each tile
// and K slice, B is copied ("packed") into NR-column micro-panels laid out exactly as the micro-kernel reads
// them (16 KB each, so one stays in L1 while every row panel of the tile streams past it). A is read in place:
// the kernel only broadcasts single A values, which costs the same from any address, so A is packed only when
// its layout is neither row- nor column-contiguous or a row panel is incomplete.
// The micro-kernel keeps an MR×NR block of C in registers (MR=8 rows × NR=32 columns = 16 AVX-512 vectors)
// and does one rank-1 update per k: 2 vector loads of B, 8 broadcasts of A, 16 fused multiply-adds.
#include "dev/gemm_old.h"

#include <omp.h>

#include <algorithm>
#include <vector>

namespace ref_old {
namespace {

constexpr int MR = 8, NR = 32;   // register tile
constexpr int KC = 128;          // K slice: a B micro-panel (16 KB) + an A row panel (4 KB) stay in L1
constexpr int MC_MAX = 512;      // C tile rows: the A block (≤ 256 KB) stays in L2
constexpr int NC_MAX = 512;      // C tile columns: the packed B block (≤ 256 KB) stays in L2

// 16-wide float vector (GCC/Clang vector extension; one zmm register with AVX-512). aligned(4) + may_alias make
// a plain dereference an unaligned, aliasing-safe load/store.
typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));

inline v16 load16(const float* p) { return *reinterpret_cast<const v16*>(p); }
inline void store16(float* p, v16 v) { *reinterpret_cast<v16*>(p) = v; }

// Ways to read A(i, k) of one MR-row panel starting at p.
struct ARowMajor {  // A(i, k) = p[i*rs + k]   (activations X or dY)
  const float* p;
  size_t rs;
  float at(int i, int k) const { return p[i * rs + k]; }
};
struct AColMajor {  // A(i, k) = p[k*cs + i]   (dYᵀ, or a packed panel with cs = MR)
  const float* p;
  size_t cs;
  float at(int i, int k) const { return p[k * cs + i]; }
};

// Copies k [k0, k0+kc) × columns [j0, j0+nc) of B into NR-wide micro-panels Bp[(p*kc + k)*NR + j], zero padded.
void pack_b(float* Bp, const ref::MatView& B, int k0, int kc, int j0, int nc) {
  for (int p = 0; p < (nc + NR - 1) / NR; p++) {
    float* dst = Bp + (size_t)p * kc * NR;
    const int jn = std::min(NR, nc - p * NR);
    if (B.cs == 1) {  // rows of B are contiguous: copy NR-wide row segments
      for (int k = 0; k < kc; k++) {
        const float* src = B.p + (size_t)(k0 + k) * B.rs + (size_t)(j0 + p * NR);
        float* d = dst + (size_t)k * NR;
        for (int j = 0; j < jn; j++) d[j] = src[j];
        for (int j = jn; j < NR; j++) d[j] = 0.0f;
      }
    } else {  // columns of B are contiguous (B = Wᵀ): read each column once, scatter into the panel
      for (int j = 0; j < NR; j++) {
        if (j < jn) {
          const float* src = B.p + (size_t)k0 * B.rs + (size_t)(j0 + p * NR + j) * B.cs;
          for (int k = 0; k < kc; k++) dst[(size_t)k * NR + j] = src[(size_t)k * B.rs];
        } else {
          for (int k = 0; k < kc; k++) dst[(size_t)k * NR + j] = 0.0f;
        }
      }
    }
  }
}

// Copies an incomplete or oddly strided A row panel (rows [i0, i0+mr), k [k0, k0+kc)) into Ap[k*MR + i], zero padded.
void pack_a_panel(float* Ap, const ref::MatView& A, int i0, int mr, int k0, int kc) {
  for (int k = 0; k < kc; k++)
    for (int i = 0; i < MR; i++)
      Ap[k * MR + i] = i < mr ? A.p[(size_t)(i0 + i) * A.rs + (size_t)(k0 + k) * A.cs] : 0.0f;
}

// C[0:mr, 0:nr] += A-panel · Bp-panel over kc steps (mr ≤ MR, nr ≤ NR; the A panel always has MR readable rows).
// The 16 accumulators are named variables so the compiler keeps them in registers for the whole k loop.
template <class APanel>
void micro_kernel(float* C, size_t ldc, const APanel a, const float* Bp, int kc, int mr, int nr) {
  v16 c00{}, c01{}, c10{}, c11{}, c20{}, c21{}, c30{}, c31{}, c40{}, c41{}, c50{}, c51{}, c60{}, c61{}, c70{}, c71{};
  // the C block is read and written after the k loop: start fetching it now (it usually lives in L2)
  for (int i = 0; i < mr; i++) {
    __builtin_prefetch(C + (size_t)i * ldc, 1);
    __builtin_prefetch(C + (size_t)i * ldc + 16, 1);
  }
  for (int k = 0; k < kc; k++) {
    const v16 b0 = load16(Bp), b1 = load16(Bp + 16);  // row k of the B panel
    // rank-1 update: C[i, :] += A[i, k] · B[k, :]
    const float a0 = a.at(0, k), a1 = a.at(1, k), a2 = a.at(2, k), a3 = a.at(3, k);
    const float a4 = a.at(4, k), a5 = a.at(5, k), a6 = a.at(6, k), a7 = a.at(7, k);
    c00 += a0 * b0; c01 += a0 * b1;
    c10 += a1 * b0; c11 += a1 * b1;
    c20 += a2 * b0; c21 += a2 * b1;
    c30 += a3 * b0; c31 += a3 * b1;
    c40 += a4 * b0; c41 += a4 * b1;
    c50 += a5 * b0; c51 += a5 * b1;
    c60 += a6 * b0; c61 += a6 * b1;
    c70 += a7 * b0; c71 += a7 * b1;
    Bp += NR;
  }
  const v16 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                          {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
  if (mr == MR && nr == NR) {
    for (int i = 0; i < MR; i++) {
      float* c = C + (size_t)i * ldc;
      store16(c, load16(c) + acc[i][0]);
      store16(c + 16, load16(c + 16) + acc[i][1]);
    }
  } else {  // edge tile: go through a scratch block and add only the valid part
    float tmp[MR][NR];
    for (int i = 0; i < MR; i++) { store16(tmp[i], acc[i][0]); store16(tmp[i] + 16, acc[i][1]); }
    for (int i = 0; i < mr; i++)
      for (int j = 0; j < nr; j++) C[(size_t)i * ldc + j] += tmp[i][j];
  }
}

// Copies A (M×K, column-contiguous: A(i,k) at p[k*cs + i]) into row-major At with leading dimension ld.
// Why: the micro-kernel walks k for 8 rows at once; with column-major A each k is a new cache line whose
// address differs by a large power-of-two-ish stride, so the 128 lines of one panel collide in a few L1 sets.
// One blocked transpose (K·M copies, against M·N·K multiply-adds) removes that.
void transpose_a(float* At, size_t ld, const ref::MatView& A, int M, int K) {
  constexpr int TB = 32;  // 32×32 blocks: source and destination lines stay in L1
#pragma omp parallel for schedule(static) if((size_t)M * K >= ((size_t)1 << 18))
  for (int i0 = 0; i0 < M; i0 += TB) {
    const int i1 = std::min(M, i0 + TB);
    for (int k0 = 0; k0 < K; k0 += TB) {
      const int k1 = std::min(K, k0 + TB);
      for (int k = k0; k < k1; k++)
        for (int i = i0; i < i1; i++) At[(size_t)i * ld + k] = A.p[(size_t)k * A.cs + (size_t)i * A.rs];
    }
  }
}

// Splits `n` into tiles of at most `max_tile` (a multiple of `quantum`), about evenly.
int tile_size(int n, int max_tile, int quantum) {
  const int tiles = (n + max_tile - 1) / max_tile;
  const int size = (n + tiles - 1) / tiles;
  return (size + quantum - 1) / quantum * quantum;
}

}  // namespace

void gemm_accumulate(float* C, size_t ldc, ref::MatView A, ref::MatView B, int M, int N, int K) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  // Column-contiguous A (dYᵀ in dW = dYᵀ·X) is transposed once into a scratch buffer; its leading dimension
  // is padded to an odd number of cache lines so consecutive rows spread over the L1 sets.
  thread_local std::vector<float> a_scratch;
  if (A.cs != 1 && (size_t)M * N >= 4096) {
    const size_t ld = (size_t)(K + 15) / 16 * 16 + 16 * ((K + 15) / 16 % 2 == 0);
    if (a_scratch.size() < (size_t)M * ld) a_scratch.resize((size_t)M * ld);
    transpose_a(a_scratch.data(), ld, A, M, K);
    A = ref::MatView{a_scratch.data(), ld, 1};
  }
  // Tiles as large as the caches allow (fewer re-packs); when there are few tiles, split N further so
  // that every thread gets work (the tile count is rounded up to a multiple of the thread count).
  const int MC = tile_size(M, MC_MAX, MR);
  const int tiles_m = (M + MC - 1) / MC;
  int tiles_n = (N + NC_MAX - 1) / NC_MAX;
  const int threads = omp_get_max_threads();
  if (tiles_m * tiles_n < 4 * threads) {
    const int per = (tiles_m * tiles_n + threads - 1) / threads * threads;
    tiles_n = std::max(tiles_n, std::min((N + NR - 1) / NR, (per + tiles_m - 1) / tiles_m));
  }
  const int NC = tile_size(N, (N + tiles_n - 1) / tiles_n, NR);
  tiles_n = (N + NC - 1) / NC;
  const int num_tiles = tiles_m * tiles_n;
#pragma omp parallel if(num_tiles > 1 && (size_t)M * N * K >= ((size_t)1 << 22))
  {
    // per-thread buffers, kept between calls (a fresh 256 KB allocation would be mmap'ed and page-faulted
    // every time): the packed B block and one packed A panel (for edge / odd-layout panels)
    thread_local std::vector<float> Bp, Ap;
    if (Bp.size() < (size_t)NC * KC) Bp.resize((size_t)NC * KC);
    if (Ap.size() < (size_t)MR * KC) Ap.resize((size_t)MR * KC);
#pragma omp for schedule(static)
    for (int tile = 0; tile < num_tiles; tile++) {
      const int tm = tile % tiles_m, tn = tile / tiles_m;
      const int i0 = tm * MC, mc = std::min(MC, M - i0);
      const int j0 = tn * NC, nc = std::min(NC, N - j0);
      for (int k0 = 0; k0 < K; k0 += KC) {  // K slices in order: the same summation order for any thread count
        const int kc = std::min(KC, K - k0);
        pack_b(Bp.data(), B, k0, kc, j0, nc);
        for (int jr = 0; jr < nc; jr += NR) {
          const float* bp = Bp.data() + (size_t)(jr / NR) * kc * NR;
          const int nr = std::min(NR, nc - jr);
          for (int ir = 0; ir < mc; ir += MR) {
            const int mr = std::min(MR, mc - ir);
            float* c = C + (size_t)(i0 + ir) * ldc + j0 + jr;
            const float* a = A.p + (size_t)(i0 + ir) * A.rs + (size_t)k0 * A.cs;
            if (mr == MR && A.cs == 1) {
              micro_kernel(c, ldc, ARowMajor{a, A.rs}, bp, kc, mr, nr);
            } else if (mr == MR && A.rs == 1) {
              micro_kernel(c, ldc, AColMajor{a, A.cs}, bp, kc, mr, nr);
            } else {
              pack_a_panel(Ap.data(), A, i0 + ir, mr, k0, kc);
              micro_kernel(c, ldc, AColMajor{Ap.data(), (size_t)MR}, bp, kc, mr, nr);
            }
          }
        }
      }
    }
  }
}

void gemm(float* C, size_t ldc, ref::MatView A, ref::MatView B, int M, int N, int K, bool accumulate,
          const float* bias) {
  if (!accumulate) {
#pragma omp parallel for schedule(static) if((size_t)M * N >= (1 << 16))
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = bias ? bias[j] : 0.0f;
  }
  ref_old::gemm_accumulate(C, ldc, A, B, M, N, K);
}

}  // namespace ref_old
