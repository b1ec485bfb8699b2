// gemm.cpp — packed, cache-blocked C += A·B (see gemm.h for why).
//
// Blocking (BLIS style): the K dimension is cut into KC slices; C into MC×NC tiles that threads share out.
// For each tile and K slice we copy ("pack") A into MR-row micro-panels and B into NR-column micro-panels,
// laid out in the exact order the micro-kernel reads them. The micro-kernel keeps an MR×NR block of C in
// registers (MR=8 rows × NR=32 columns = 16 AVX-512 vectors) and does one rank-1 update per k:
// 2 vector loads of B, 8 broadcasts of A, 16 fused multiply-adds.
#include "cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <vector>

namespace ref {
namespace {

constexpr int MR = 8, NR = 32;   // register tile
constexpr int KC = 128;          // K slice: a B micro-panel (16 KB) + an A micro-panel (4 KB) stay in L1
constexpr int MC_MAX = 512;      // C tile rows: the packed A block (≤ 256 KB) stays in L2
constexpr int NC_MAX = 512;      // C tile columns: the packed B block (≤ 256 KB) stays in L2

// 16-wide float vector (GCC/Clang vector extension; one zmm register with AVX-512). aligned(4) + may_alias make
// a plain dereference an unaligned, aliasing-safe load/store.
typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));

inline v16 load16(const float* p) { return *reinterpret_cast<const v16*>(p); }
inline void store16(float* p, v16 v) { *reinterpret_cast<v16*>(p) = v; }

// Pack rows [i0, i0+mc) × k [k0, k0+kc) of A into micro-panels: panel r holds rows r*MR.., k-major:
// Ap[(r*kc + k)*MR + i]. Rows beyond M are zero so the micro-kernel never branches.
void pack_a(float* Ap, const MatView& A, int i0, int mc, int k0, int kc) {
  if (A.rs == 1 && mc % MR == 0) {  // Aᵀ stored row-major: the MR values of one k are contiguous
    for (int r = 0; r < mc / MR; r++) {
      float* dst = Ap + (size_t)r * kc * MR;
      for (int k = 0; k < kc; k++) {
        const float* src = A.p + (size_t)(i0 + r * MR) + (size_t)(k0 + k) * A.cs;
        for (int i = 0; i < MR; i++) dst[k * MR + i] = src[i];
      }
    }
    return;
  }
  for (int r = 0; r < (mc + MR - 1) / MR; r++) {
    float* dst = Ap + (size_t)r * kc * MR;
    for (int i = 0; i < MR; i++) {
      const int row = r * MR + i;
      if (row < mc) {
        const float* src = A.p + (size_t)(i0 + row) * A.rs + (size_t)k0 * A.cs;
        if (A.cs == 1) {
          for (int k = 0; k < kc; k++) dst[k * MR + i] = src[k];
        } else {
          for (int k = 0; k < kc; k++) dst[k * MR + i] = src[(size_t)k * A.cs];
        }
      } else {
        for (int k = 0; k < kc; k++) dst[k * MR + i] = 0.0f;
      }
    }
  }
}

// Pack k [k0, k0+kc) × columns [j0, j0+nc) of B into micro-panels: Bp[(p*kc + k)*NR + j], zero padded.
void pack_b(float* Bp, const MatView& B, int k0, int kc, int j0, int nc) {
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

// C[0:mr, 0:nr] += Ap-panel · Bp-panel over kc steps (mr ≤ MR, nr ≤ NR; padded entries are ignored).
// The 16 accumulators are named variables so the compiler keeps them in registers for the whole k loop.
void micro_kernel(float* C, size_t ldc, const float* Ap, const float* Bp, int kc, int mr, int nr) {
  v16 c00{}, c01{}, c10{}, c11{}, c20{}, c21{}, c30{}, c31{}, c40{}, c41{}, c50{}, c51{}, c60{}, c61{}, c70{}, c71{};
  for (int k = 0; k < kc; k++) {
    const v16 b0 = load16(Bp), b1 = load16(Bp + 16);  // row k of the B panel
    // rank-1 update: C[i, :] += A[i, k] · B[k, :]
    c00 += Ap[0] * b0; c01 += Ap[0] * b1;
    c10 += Ap[1] * b0; c11 += Ap[1] * b1;
    c20 += Ap[2] * b0; c21 += Ap[2] * b1;
    c30 += Ap[3] * b0; c31 += Ap[3] * b1;
    c40 += Ap[4] * b0; c41 += Ap[4] * b1;
    c50 += Ap[5] * b0; c51 += Ap[5] * b1;
    c60 += Ap[6] * b0; c61 += Ap[6] * b1;
    c70 += Ap[7] * b0; c71 += Ap[7] * b1;
    Ap += MR;
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

// Splits `n` into tiles of at most `max_tile` (a multiple of `quantum`), about evenly.
int tile_size(int n, int max_tile, int quantum) {
  const int tiles = (n + max_tile - 1) / max_tile;
  const int size = (n + tiles - 1) / tiles;
  return (size + quantum - 1) / quantum * quantum;
}

}  // namespace

void gemm_accumulate(float* C, size_t ldc, MatView A, MatView B, int M, int N, int K) {
  if (M <= 0 || N <= 0 || K <= 0) return;
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
    // per-thread packing buffers (sized for full tiles)
    std::vector<float> Ap((size_t)MC * KC), Bp((size_t)NC * KC);
#pragma omp for schedule(static)
    for (int tile = 0; tile < num_tiles; tile++) {
      const int tm = tile % tiles_m, tn = tile / tiles_m;
      const int i0 = tm * MC, mc = std::min(MC, M - i0);
      const int j0 = tn * NC, nc = std::min(NC, N - j0);
      for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = std::min(KC, K - k0);
        pack_a(Ap.data(), A, i0, mc, k0, kc);
        pack_b(Bp.data(), B, k0, kc, j0, nc);
        for (int jr = 0; jr < nc; jr += NR) {
          const float* bp = Bp.data() + (size_t)(jr / NR) * kc * NR;
          for (int ir = 0; ir < mc; ir += MR) {
            const float* ap = Ap.data() + (size_t)(ir / MR) * kc * MR;
            micro_kernel(C + (size_t)(i0 + ir) * ldc + j0 + jr, ldc, ap, bp, kc,
                         std::min(MR, mc - ir), std::min(NR, nc - jr));
          }
        }
      }
    }
  }
}

}  // namespace ref
