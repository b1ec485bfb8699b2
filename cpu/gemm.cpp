// gemm.cpp — packed, cache-blocked C += A·B (see gemm.h for why).
//
// Blocking (BLIS style): the K dimension is cut into KC slices; C into MC×NC tiles that threads share out.
// For each tile and K slice we copy ("pack") A into MR-row micro-panels and B into NR-column micro-panels,
// laid out in the exact order the micro-kernel reads them. The micro-kernel keeps an MR×NR block of C in
// registers (MR=8 rows × NR=32 columns = 16 AVX-512 vectors) and does one rank-1 update per k:
// 2 vector loads of B, 8 broadcasts of A, 16 fused multiply-adds.
#include "cpu/gemm.h"

#include <algorithm>
#include <vector>

namespace ref {
namespace {

constexpr int MR = 8, NR = 32;        // register tile
constexpr int KC = 256;               // K slice: an A micro-panel (8 KB) + a B micro-panel (32 KB) stay in L1
constexpr int MC = 128, NC = 512;     // C tile: packed A (128 KB) + packed B (512 KB) stay in L2

// 16-wide float vector (GCC/Clang vector extension; one zmm register with AVX-512). aligned(4) + may_alias make
// a plain dereference an unaligned, aliasing-safe load/store.
typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));

inline v16 load16(const float* p) { return *reinterpret_cast<const v16*>(p); }
inline void store16(float* p, v16 v) { *reinterpret_cast<v16*>(p) = v; }

// Pack rows [i0, i0+mc) × k [k0, k0+kc) of A into micro-panels: panel r holds rows r*MR.., k-major:
// Ap[(r*kc + k)*MR + i]. Rows beyond M are zero so the micro-kernel never branches.
void pack_a(float* Ap, const MatView& A, int i0, int mc, int k0, int kc) {
  for (int r = 0; r < (mc + MR - 1) / MR; r++) {
    float* dst = Ap + (size_t)r * kc * MR;
    for (int i = 0; i < MR; i++) {
      const int row = r * MR + i;
      if (row < mc) {
        const float* src = A.p + (size_t)(i0 + row) * A.rs + (size_t)k0 * A.cs;
        for (int k = 0; k < kc; k++) dst[k * MR + i] = src[(size_t)k * A.cs];
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
    for (int k = 0; k < kc; k++) {
      const float* src = B.p + (size_t)(k0 + k) * B.rs + (size_t)(j0 + p * NR) * B.cs;
      float* d = dst + (size_t)k * NR;
      if (B.cs == 1) {
        for (int j = 0; j < jn; j++) d[j] = src[j];
      } else {
        for (int j = 0; j < jn; j++) d[j] = src[(size_t)j * B.cs];
      }
      for (int j = jn; j < NR; j++) d[j] = 0.0f;
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

}  // namespace

void gemm_accumulate(float* C, size_t ldc, MatView A, MatView B, int M, int N, int K) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  const int tiles_m = (M + MC - 1) / MC, tiles_n = (N + NC - 1) / NC;
  const int num_tiles = tiles_m * tiles_n;
#pragma omp parallel if(num_tiles > 1 && (size_t)M * N * K >= ((size_t)1 << 22))
  {
    // per-thread packing buffers (sized for full tiles)
    std::vector<float> Ap((size_t)MC * KC), Bp((size_t)NC * KC);
#pragma omp for schedule(static)
    for (int tile = 0; tile < num_tiles; tile++) {
      // column-tile major order: consecutive tiles share the same B columns less often than A rows,
      // and A (the activations) is usually the smaller operand.
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
