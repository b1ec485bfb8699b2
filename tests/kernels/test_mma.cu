// test_mma.cu — kernels/mma.cuh: mma.sync m16n8k16 (bf16, fp32 accumulate), ldmatrix x1/x2/x4 (± .trans) and
// cp.async (commit/wait_group/wait_all), on the CUDA-on-CPU layer (and, built by nvcc, on a GPU).
//
// The fragment layouts are the PTX ISA's (section "Matrix Fragments for mma.m16n8k16 with floating point type"),
// written out ONCE here on the host (doc_a/doc_b/doc_c below, from ../shared/docs/tensor-core-emulation.md) and
// independently of the layer's emulation (cuda_cpu/cucpu_sched.cpp): the test kernels only move raw registers,
// every layout decision is the test's. So a layout that is wrong in the emulation fails here.
//   - probes: one launch, one warp per probe; a single A (or B) register half is 1.0, the other operand holds
//     distinct integers; which D entries come out nonzero, with which values, pins down where the emulation puts
//     that A (B) element and where it puts D, for all 32×8 A slots and 32×4 B slots; the doc's worked example
//     (lane 5) is asserted element by element;
//   - products: random bf16 matrices through mma (fragments loaded by the doc tables) and through
//     cp.async -> shared -> ldmatrix(.trans) -> mma, against a double-precision product;
//   - ldmatrix x1/x2/x4 with and without .trans, row addresses permuted across lanes, unused lanes' addresses null;
//   - cp.async: a read before the wait sees the 0xFF poison (the emulation does NOT copy at issue: CPU layer
//     only, on a GPU that read is undefined), wait_group<1> retires only the older groups, uncommitted copies
//     stay pending until wait_all, src-size zero-fills.
#include "kernels/mma.cuh"
#include "tests/kernels/kernel_test_util.h"

#include <cmath>
#include <cstring>
#include <vector>

namespace {

#ifdef __CUDACC__
constexpr bool kCpuLayer = false;
#else
constexpr bool kCpuLayer = true;
#endif

template <class T>
T* dev_alloc(size_t n) {
  T* p = nullptr;
  CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), (n ? n : 1) * sizeof(T)));
  CUDA_CHECK(cudaMemset(p, 0xFF, n * sizeof(T)));
  return p;
}
template <class T>
T* to_dev(const std::vector<T>& h) {
  T* p = dev_alloc<T>(h.size());
  CUDA_CHECK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}
template <class T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> h(n);
  CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

uint16_t bf16_bits(float x) {
  __nv_bfloat16 b = __float2bfloat16(x);
  uint16_t r;
  std::memcpy(&r, &b, 2);
  return r;
}

// ---- the PTX ISA layouts (host side; groupID g = lane >> 2, tig t = lane % 4) -----------------------------
struct RC {
  int r, c;
};
RC doc_a(int lane, int i) {  // a_i, i < 8: A[row][col]
  const int g = lane >> 2, t = lane & 3;
  const int row = (i == 0 || i == 1 || i == 4 || i == 5) ? g : g + 8;
  const int col = i < 4 ? t * 2 + (i & 1) : t * 2 + (i & 1) + 8;
  return {row, col};
}
RC doc_b(int lane, int i) {  // b_i, i < 4: B[k][n]
  const int g = lane >> 2, t = lane & 3;
  return {i < 2 ? t * 2 + (i & 1) : t * 2 + (i & 1) + 8, g};
}
RC doc_c(int lane, int i) {  // c_i / d_i, i < 4: C[row][col]
  const int g = lane >> 2, t = lane & 3;
  return {i < 2 ? g : g + 8, t * 2 + (i & 1)};
}

// Registers of one warp's operands, as the kernel moves them: a[32][4], b[32][2] (bf16x2), c/d[32][4] (fp32).
struct Frag {
  uint32_t a[32][4], b[32][2];
  float c[32][4];
};
void set_half(uint32_t& reg, int half, float v) {
  const uint32_t h = bf16_bits(v);
  reg = half ? (reg & 0xFFFFu) | (h << 16) : (reg & 0xFFFF0000u) | h;
}
Frag frag_from(const float* A /*16x16*/, const float* B /*16x8*/, const float* C /*16x8*/) {
  Frag f;
  std::memset(&f, 0, sizeof f);
  for (int l = 0; l < 32; l++) {
    for (int i = 0; i < 8; i++) {
      const RC p = doc_a(l, i);
      set_half(f.a[l][i / 2], i & 1, A[p.r * 16 + p.c]);
    }
    for (int i = 0; i < 4; i++) {
      const RC p = doc_b(l, i);
      set_half(f.b[l][i / 2], i & 1, B[p.r * 8 + p.c]);
    }
    for (int i = 0; i < 4; i++) {
      const RC p = doc_c(l, i);
      f.c[l][i] = C[p.r * 8 + p.c];
    }
  }
  return f;
}

// One warp per block: d = mma(a, b, c) of probe blockIdx.x, registers straight from/to memory.
__global__ void mma_regs_kernel(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
  const int lane = threadIdx.x, p = blockIdx.x;
  uint32_t ra[4], rb[2];
  float rc[4], rd[4];
  for (int i = 0; i < 4; i++) ra[i] = a[(p * 32 + lane) * 4 + i];
  for (int i = 0; i < 2; i++) rb[i] = b[(p * 32 + lane) * 2 + i];
  for (int i = 0; i < 4; i++) rc[i] = c[(p * 32 + lane) * 4 + i];
  kern::mma_bf16_16816(rd, ra, rb, rc);
  for (int i = 0; i < 4; i++) d[(p * 32 + lane) * 4 + i] = rd[i];
}

// Runs every probe; returns D registers [probe][lane][4].
std::vector<float> run_probes(const std::vector<Frag>& probes) {
  const size_t P = probes.size();
  std::vector<uint32_t> a(P * 32 * 4), b(P * 32 * 2);
  std::vector<float> c(P * 32 * 4);
  for (size_t p = 0; p < P; p++) {
    std::memcpy(&a[p * 128], probes[p].a, sizeof probes[p].a);
    std::memcpy(&b[p * 64], probes[p].b, sizeof probes[p].b);
    std::memcpy(&c[p * 128], probes[p].c, sizeof probes[p].c);
  }
  uint32_t *da = to_dev(a), *db = to_dev(b);
  float *dc = to_dev(c), *dd = dev_alloc<float>(P * 128);
  launch_kernel(mma_regs_kernel, dim3((unsigned)P), dim3(32), 0, 0, dd, (const uint32_t*)da, (const uint32_t*)db,
                (const float*)dc);
  CUDA_CHECK(cudaDeviceSynchronize());
  auto d = to_host(dd, P * 128);
  cudaFree(da);
  cudaFree(db);
  cudaFree(dc);
  cudaFree(dd);
  return d;
}

// D read back through the doc's C layout into a 16x8 matrix.
std::vector<float> d_matrix(const float* regs /*[32][4]*/) {
  std::vector<float> D(128, NAN);
  for (int l = 0; l < 32; l++)
    for (int i = 0; i < 4; i++) {
      const RC p = doc_c(l, i);
      D[p.r * 8 + p.c] = regs[l * 4 + i];
    }
  return D;
}

// Every A slot (lane, i): A = 1 there, 0 elsewhere; B[k][n] = 8k + n + 1 (exact in bf16); C = 0.
// Then D = e_r ⊗ B[c][:]: row r of D is row c of B, every other row 0, with (r, c) the doc's place of that slot.
TEST(Mma, ALayoutEverySlotAndDLayout) {
  std::vector<float> B(128), Z(256, 0.0f);
  for (int k = 0; k < 16; k++)
    for (int n = 0; n < 8; n++) B[k * 8 + n] = 8.0f * k + n + 1;
  std::vector<Frag> probes;
  for (int l = 0; l < 32; l++)
    for (int i = 0; i < 8; i++) {
      Frag f = frag_from(Z.data(), B.data(), Z.data());
      set_half(f.a[l][i / 2], i & 1, 1.0f);
      probes.push_back(f);
    }
  const auto d = run_probes(probes);
  int bad = 0;
  for (int l = 0; l < 32; l++)
    for (int i = 0; i < 8; i++) {
      const RC a = doc_a(l, i);
      const auto D = d_matrix(&d[(l * 8 + i) * 128]);
      for (int r = 0; r < 16; r++)
        for (int n = 0; n < 8; n++) {
          const float want = r == a.r ? B[a.c * 8 + n] : 0.0f;
          if (D[r * 8 + n] != want && bad++ < 10)
            ADD_FAILURE() << "A slot lane " << l << " a" << i << " (A[" << a.r << "][" << a.c << "]): D[" << r << "]["
                          << n << "] = " << D[r * 8 + n] << ", want " << want;
        }
    }
  EXPECT_EQ(bad, 0);
}

// Every B slot: B = 1 there; A[r][k] = 16r + k + 1 (<= 256, exact in bf16); D = A[:][k] ⊗ e_n.
TEST(Mma, BLayoutEverySlot) {
  std::vector<float> A(256), Z(256, 0.0f);
  for (int r = 0; r < 16; r++)
    for (int k = 0; k < 16; k++) A[r * 16 + k] = 16.0f * r + k + 1;
  std::vector<Frag> probes;
  for (int l = 0; l < 32; l++)
    for (int i = 0; i < 4; i++) {
      Frag f = frag_from(A.data(), Z.data(), Z.data());
      set_half(f.b[l][i / 2], i & 1, 1.0f);
      probes.push_back(f);
    }
  const auto d = run_probes(probes);
  int bad = 0;
  for (int l = 0; l < 32; l++)
    for (int i = 0; i < 4; i++) {
      const RC b = doc_b(l, i);
      const auto D = d_matrix(&d[(l * 4 + i) * 128]);
      for (int r = 0; r < 16; r++)
        for (int n = 0; n < 8; n++) {
          const float want = n == b.c ? A[r * 16 + b.r] : 0.0f;
          if (D[r * 8 + n] != want && bad++ < 10)
            ADD_FAILURE() << "B slot lane " << l << " b" << i << ": D[" << r << "][" << n << "] = " << D[r * 8 + n]
                          << ", want " << want;
        }
    }
  EXPECT_EQ(bad, 0);
}

// The worked example of the design note, element by element: lane 5 (groupID 1, tig 1) holds
// A[1][2], A[1][3], A[9][2], A[9][3], A[1][10], A[1][11], A[9][10], A[9][11]; B[2][1], B[3][1], B[10][1], B[11][1];
// C[1][2], C[1][3], C[9][2], C[9][3]. Each is read off what the emulation computes, not off doc_a/b/c: a probe
// with a single 1 in lane 5's slot i gives a D whose nonzero entries reveal the (row, col) the slot stands for.
TEST(Mma, WorkedExampleLane5) {
  const RC wantA[8] = {{1, 2}, {1, 3}, {9, 2}, {9, 3}, {1, 10}, {1, 11}, {9, 10}, {9, 11}};
  const RC wantB[4] = {{2, 1}, {3, 1}, {10, 1}, {11, 1}};
  const RC wantC[4] = {{1, 2}, {1, 3}, {9, 2}, {9, 3}};
  // A slot probes: B[k][n] = 8k + n + 1, so a nonzero D entry v at D row r means A[r][(v-1)/8].
  std::vector<float> Bv(128), Av(256), Z(256, 0.0f);
  for (int k = 0; k < 16; k++)
    for (int n = 0; n < 8; n++) Bv[k * 8 + n] = 8.0f * k + n + 1;
  for (int r = 0; r < 16; r++)
    for (int k = 0; k < 16; k++) Av[r * 16 + k] = 16.0f * r + k + 1;
  std::vector<Frag> probes;
  for (int i = 0; i < 8; i++) {
    Frag f = frag_from(Z.data(), Bv.data(), Z.data());
    set_half(f.a[5][i / 2], i & 1, 1.0f);
    probes.push_back(f);
  }
  for (int i = 0; i < 4; i++) {
    Frag f = frag_from(Av.data(), Z.data(), Z.data());
    set_half(f.b[5][i / 2], i & 1, 1.0f);
    probes.push_back(f);
  }
  const auto d = run_probes(probes);
  for (int i = 0; i < 8; i++) {  // A: the one nonzero row of D is the element's row, its values name the column
    const float* regs = &d[i * 128];
    int row = -1, col = -1;
    for (int l = 0; l < 32; l++)
      for (int e = 0; e < 4; e++)
        if (regs[l * 4 + e] != 0.0f) {
          row = doc_c(l, e).r;
          col = ((int)regs[l * 4 + e] - 1) / 8;
        }
    EXPECT_EQ(row, wantA[i].r) << "lane 5 a" << i;
    EXPECT_EQ(col, wantA[i].c) << "lane 5 a" << i;
  }
  for (int i = 0; i < 4; i++) {  // B: the one nonzero column of D is n; its values A[r][k] name k
    const float* regs = &d[(8 + i) * 128];
    int k = -1, n = -1;
    for (int l = 0; l < 32; l++)
      for (int e = 0; e < 4; e++)
        if (regs[l * 4 + e] != 0.0f) {
          n = doc_c(l, e).c;
          k = ((int)regs[l * 4 + e] - 1) % 16;
        }
    EXPECT_EQ(k, wantB[i].r) << "lane 5 b" << i;
    EXPECT_EQ(n, wantB[i].c) << "lane 5 b" << i;
  }
  // C/D: with A = 1 at A[r][2] (lane 5's a0 is A[1][2], a2 is A[9][2]) D row r = B[2][:] = 17 + n, so lane 5's
  // d_i must hold 17 + col for the wanted (row, col), and the A probe for that row must be the one that fired.
  for (int i = 0; i < 4; i++) {
    const int probe = wantC[i].r == 1 ? 0 : 2;
    EXPECT_EQ(d[probe * 128 + 5 * 4 + i], 17.0f + wantC[i].c) << "lane 5 d" << i;
    EXPECT_EQ(d[(2 - probe) * 128 + 5 * 4 + i], 0.0f) << "lane 5 d" << i << " must not be in row " << 10 - wantC[i].r;
  }
}

// Random A (16×K), B (K×8), C: D = A·B + C through K/16 chained mmas, fragments loaded by the doc tables.
__global__ void mma_chain_kernel(float* D, const __nv_bfloat16* A, const __nv_bfloat16* B, const float* C, int K) {
  const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  float acc[4];
  for (int i = 0; i < 4; i++) acc[i] = C[(g + 8 * (i >> 1)) * 8 + t * 2 + (i & 1)];
  for (int k0 = 0; k0 < K; k0 += 16) {
    uint32_t a[4], b[2];
    for (int r = 0; r < 4; r++) {  // a[r] = A[g + 8(r&1)][k0 + 2t + 8(r>>1) + {0,1}]
      const int row = g + 8 * (r & 1), col = k0 + t * 2 + 8 * (r >> 1);
      __nv_bfloat162 v;
      v.x = A[row * K + col];
      v.y = A[row * K + col + 1];
      memcpy(&a[r], &v, 4);
    }
    for (int r = 0; r < 2; r++) {  // b[r] = B[k0 + 2t + 8r + {0,1}][g]
      const int k = k0 + t * 2 + 8 * r;
      __nv_bfloat162 v;
      v.x = B[k * 8 + g];
      v.y = B[(k + 1) * 8 + g];
      memcpy(&b[r], &v, 4);
    }
    kern::mma_bf16_16816(acc, a, b, acc);
  }
  for (int i = 0; i < 4; i++) D[(g + 8 * (i >> 1)) * 8 + t * 2 + (i & 1)] = acc[i];
}

// |D - ref| <= 2^-22 · Σ|terms|: bf16 products are exact in fp32, and any order of K+1 fp32 additions errs by at
// most (K+1)·2^-24 ≤ 2^-22 × Σ|terms| for K ≤ 63 (the bound holds for any summation order the hardware uses).
TEST(Mma, ChainedProductMatchesReference) {
  for (int K : {16, 48}) {
    const auto A = ktest::round_through<__nv_bfloat16>(ktest::random_vec(16 * K, 11 + K));
    const auto B = ktest::round_through<__nv_bfloat16>(ktest::random_vec(K * 8, 12 + K));
    const auto C = ktest::random_vec(128, 13 + K);
    std::vector<float> ref(128), terms(128);
    for (int r = 0; r < 16; r++)
      for (int n = 0; n < 8; n++) {
        double s = C[r * 8 + n], m = std::fabs(C[r * 8 + n]);
        for (int k = 0; k < K; k++) {
          s += (double)A[r * K + k] * B[k * 8 + n];
          m += std::fabs((double)A[r * K + k] * B[k * 8 + n]);
        }
        ref[r * 8 + n] = (float)s;
        terms[r * 8 + n] = (float)m;
      }
    ktest::DeviceArray<__nv_bfloat16> dA(A), dB(B);
    ktest::DeviceArray<float> dC(C), dD(128);
    launch_kernel(mma_chain_kernel, dim3(1), dim3(32), 0, 0, dD.ptr, (const __nv_bfloat16*)dA.ptr,
                  (const __nv_bfloat16*)dB.ptr, (const float*)dC.ptr, K);
    CUDA_CHECK(cudaDeviceSynchronize());
    ktest::compare("mma chain K=" + std::to_string(K), dD.download(), ref, {0.0, std::ldexp(1.0, -22)}, &terms);
  }
}

// ---- ldmatrix ------------------------------------------------------------------------------------------------
// Shared memory holds 32 rows of 8 b16 values: row q, element e = 256 + 8q + e (distinct raw bits). Lane l points
// at row perm(l) = (7·l + 3) mod 32 (a permutation), lanes beyond the ones used pass nullptr. Output: the 4
// registers of every lane.
template <int NUM, bool TRANS>
__global__ void ldmatrix_kernel(uint32_t* out, const uint16_t* rows) {
  __shared__ __align__(16) uint16_t s[32][8];
  const int lane = threadIdx.x;
  for (int e = 0; e < 8; e++) s[lane][e] = rows[lane * 8 + e];
  __syncthreads();
  const void* addr = lane < 8 * NUM ? (const void*)s[(7 * lane + 3) % 32] : nullptr;
  uint32_t r[4] = {0xDEADBEEFu, 0xDEADBEEFu, 0xDEADBEEFu, 0xDEADBEEFu};
  if (NUM == 1) {
    if (TRANS) kern::ldmatrix_x1_trans(r[0], addr); else kern::ldmatrix_x1(r[0], addr);
  } else if (NUM == 2) {
    uint32_t (&r2)[2] = *reinterpret_cast<uint32_t(*)[2]>(r);
    if (TRANS) kern::ldmatrix_x2_trans(r2, addr); else kern::ldmatrix_x2(r2, addr);
  } else {
    if (TRANS) kern::ldmatrix_x4_trans(r, addr); else kern::ldmatrix_x4(r, addr);
  }
  for (int i = 0; i < 4; i++) out[lane * 4 + i] = r[i];
}

template <int NUM, bool TRANS>
void check_ldmatrix() {
  std::vector<uint16_t> rows(256);
  for (int q = 0; q < 32; q++)
    for (int e = 0; e < 8; e++) rows[q * 8 + e] = (uint16_t)(256 + 8 * q + e);
  uint16_t* drows = to_dev(rows);
  uint32_t* dout = dev_alloc<uint32_t>(128);
  launch_kernel((ldmatrix_kernel<NUM, TRANS>), dim3(1), dim3(32), 0, 0, dout, (const uint16_t*)drows);
  CUDA_CHECK(cudaDeviceSynchronize());
  const auto out = to_host(dout, 128);
  // matrix m, row r = the row lane 8m + r points at; element [r][e] of matrix m:
  auto M = [&](int m, int r, int e) { return rows[((7 * (8 * m + r) + 3) % 32) * 8 + e]; };
  int bad = 0;
  for (int l = 0; l < 32; l++)
    for (int m = 0; m < 4; m++) {
      uint32_t want = 0xDEADBEEFu;  // registers past .xNUM are untouched
      if (m < NUM) {
        const int g = l / 4, t = l % 4;
        const uint32_t lo = TRANS ? M(m, 2 * t, g) : M(m, g, 2 * t);
        const uint32_t hi = TRANS ? M(m, 2 * t + 1, g) : M(m, g, 2 * t + 1);
        want = lo | hi << 16;
      }
      if (out[l * 4 + m] != want && bad++ < 8)
        ADD_FAILURE() << "ldmatrix x" << NUM << (TRANS ? ".trans" : "") << " lane " << l << " reg " << m << ": 0x"
                      << std::hex << out[l * 4 + m] << ", want 0x" << want;
    }
  EXPECT_EQ(bad, 0);
  cudaFree(drows);
  cudaFree(dout);
}

TEST(Ldmatrix, X1) { check_ldmatrix<1, false>(); }
TEST(Ldmatrix, X1Trans) { check_ldmatrix<1, true>(); }
TEST(Ldmatrix, X2) { check_ldmatrix<2, false>(); }
TEST(Ldmatrix, X2Trans) { check_ldmatrix<2, true>(); }
TEST(Ldmatrix, X4) { check_ldmatrix<4, false>(); }
TEST(Ldmatrix, X4Trans) { check_ldmatrix<4, true>(); }

// ---- the whole pipeline: cp.async -> shared -> ldmatrix -> mma --------------------------------------------------
// D (32×16) = X (32×32, row-major) · Y, with Y given either as Yt (16×32: n rows of k, as K in Q·K^T; ldmatrix
// without .trans) or as Yk (32×16: k rows of n, as V in P·V; ldmatrix .trans). 2 warps, 16 rows each. Rows padded
// to 40 b16 (80 bytes: 16-byte aligned, conflict-free). Tiles arrive by cp.async in two groups (X; Y).
template <bool Y_KN>
__global__ void gemm_pipeline_kernel(float* D, const __nv_bfloat16* X, const __nv_bfloat16* Y) {
  constexpr int LD = 40;
  DYNAMIC_SHARED(__nv_bfloat16, smem);
  __nv_bfloat16* sX = smem;            // [32][LD]
  __nv_bfloat16* sY = smem + 32 * LD;  // [32][LD] (Yk) or [16][LD] (Yt)
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  for (int c = tid; c < 32 * 4; c += blockDim.x)  // X: 32 rows of 4 chunks of 8
    kern::cp_async_cg16(sX + (c / 4) * LD + (c % 4) * 8, X + (c / 4) * 32 + (c % 4) * 8);
  kern::cp_async_commit();
  const int yrows = Y_KN ? 32 : 16, ycols = Y_KN ? 16 : 32;
  for (int c = tid; c < yrows * ycols / 8; c += blockDim.x) {
    const int r = c / (ycols / 8), ch = c % (ycols / 8);
    kern::cp_async_ca16(sY + r * LD + ch * 8, Y + r * ycols + ch * 8);
  }
  kern::cp_async_commit();
  kern::cp_async_wait_group<0>();
  __syncthreads();
  float acc[2][4] = {};  // two n-tiles of 8
  for (int k0 = 0; k0 < 32; k0 += 16) {
    uint32_t a[4];
    // A fragment: lane l points at X row 16w + (l & 15), column k0 + 8(l >> 4)
    kern::ldmatrix_x4(a, sX + (16 * warp + (lane & 15)) * LD + k0 + 8 * (lane >> 4));
    uint32_t b[4];  // b[0..1]: n-tile 0, b[2..3]: n-tile 1
    if (Y_KN) {  // Yk[k][n]: matrices (k0..+7, n 0..7), (k0+8.., n 0..7), (k0.., n 8..15), (k0+8.., n 8..15)
      kern::ldmatrix_x4_trans(b, sY + (k0 + (lane & 7) + 8 * ((lane >> 3) & 1)) * LD + 8 * (lane >> 4));
    } else {  // Yt[n][k]: matrices (n 0..7, k0..+7), (n 0..7, k0+8..), (n 8..15, k0..), (n 8..15, k0+8..)
      kern::ldmatrix_x4(b, sY + ((lane & 7) + 8 * (lane >> 4)) * LD + k0 + 8 * ((lane >> 3) & 1));
    }
    const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
    kern::mma_bf16_16816(acc[0], a, b0, acc[0]);
    kern::mma_bf16_16816(acc[1], a, b1, acc[1]);
  }
  const int g = lane >> 2, t = lane & 3;
  for (int j = 0; j < 2; j++)
    for (int i = 0; i < 4; i++) D[(16 * warp + g + 8 * (i >> 1)) * 16 + 8 * j + t * 2 + (i & 1)] = acc[j][i];
}

TEST(Mma, CpAsyncLdmatrixMmaPipelineMatchesProduct) {
  const auto X = ktest::round_through<__nv_bfloat16>(ktest::random_vec(32 * 32, 21));
  const auto Yk = ktest::round_through<__nv_bfloat16>(ktest::random_vec(32 * 16, 22));  // [k][n]
  std::vector<float> Yt(16 * 32);                                                        // [n][k]
  for (int k = 0; k < 32; k++)
    for (int n = 0; n < 16; n++) Yt[n * 32 + k] = Yk[k * 16 + n];
  std::vector<float> ref(32 * 16), terms(32 * 16);
  for (int r = 0; r < 32; r++)
    for (int n = 0; n < 16; n++) {
      double s = 0, m = 0;
      for (int k = 0; k < 32; k++) {
        s += (double)X[r * 32 + k] * Yk[k * 16 + n];
        m += std::fabs((double)X[r * 32 + k] * Yk[k * 16 + n]);
      }
      ref[r * 16 + n] = (float)s;
      terms[r * 16 + n] = (float)m;
    }
  const size_t smem = 2 * 32 * 40 * sizeof(__nv_bfloat16);
  for (bool kn : {true, false}) {
    ktest::DeviceArray<__nv_bfloat16> dX(X), dY(kn ? Yk : Yt);
    ktest::DeviceArray<float> dD(32 * 16);
    if (kn)
      launch_kernel(gemm_pipeline_kernel<true>, dim3(1), dim3(64), smem, 0, dD.ptr, (const __nv_bfloat16*)dX.ptr,
                    (const __nv_bfloat16*)dY.ptr);
    else
      launch_kernel(gemm_pipeline_kernel<false>, dim3(1), dim3(64), smem, 0, dD.ptr, (const __nv_bfloat16*)dX.ptr,
                    (const __nv_bfloat16*)dY.ptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    // same bound as above: 32 exact products summed in fp32
    ktest::compare(kn ? "X·Yk (ldmatrix .trans)" : "X·Yt^T (ldmatrix)", dD.download(), ref,
                   {0.0, std::ldexp(1.0, -22)}, &terms);
  }
}

// ---- cp.async ordering ---------------------------------------------------------------------------------------
// Each thread copies three 16-byte chunks: chunk 0 (group 0), chunk 1 (group 1), chunk 2 (not committed yet), and
// snapshots its shared memory after: issue (before any wait), wait_group<1>, wait_group<0>, wait_all. Chunk 2
// uses src-size 6 (bytes 6..15 zero-filled). snap[stage][thread][chunk][16 bytes].
__global__ void cp_async_order_kernel(uint8_t* snap, const uint8_t* src) {
  DYNAMIC_SHARED(uint8_t, smem_bytes);
  const int tid = threadIdx.x, n = blockDim.x;
  uint8_t* mine = smem_bytes + tid * 48;
  auto snapshot = [&](int stage) {
    for (int i = 0; i < 48; i++) snap[(stage * n + tid) * 48 + i] = mine[i];
  };
  kern::cp_async_cg16(mine, src + tid * 48);
  kern::cp_async_commit();
  kern::cp_async_cg16(mine + 16, src + tid * 48 + 16);
  kern::cp_async_commit();
  kern::cp_async_ca16(mine + 32, src + tid * 48 + 32, 6);
  snapshot(0);  // nothing waited for: on the CPU layer still the 0xFF poison (on a GPU: undefined)
  kern::cp_async_wait_group<1>();
  snapshot(1);  // group 0 retired; group 1 may still be in flight
  kern::cp_async_wait_group<0>();
  snapshot(2);  // groups 0 and 1 retired; the uncommitted chunk 2 may still be in flight
  kern::cp_async_wait_all();
  snapshot(3);  // everything
}

TEST(CpAsync, CopiesLandAtTheMatchingWaitNotAtIssue) {
  const int n = 64;
  std::vector<uint8_t> src(n * 48);
  for (size_t i = 0; i < src.size(); i++) src[i] = (uint8_t)(i * 7 + 1);
  uint8_t* dsrc = to_dev(src);
  uint8_t* dsnap = dev_alloc<uint8_t>(4 * n * 48);
  launch_kernel(cp_async_order_kernel, dim3(2), dim3(n), n * 48, 0, dsnap, (const uint8_t*)dsrc);
  CUDA_CHECK(cudaDeviceSynchronize());
  const auto snap = to_host(dsnap, 4 * n * 48);
  auto expect_chunk = [&](int stage, int chunk, bool landed) {
    int bad = 0;
    for (int t = 0; t < n; t++)
      for (int i = 0; i < 16; i++) {
        const uint8_t got = snap[(stage * n + t) * 48 + chunk * 16 + i];
        const uint8_t copied = chunk == 2 && i >= 6 ? 0 : src[t * 48 + chunk * 16 + i];
        const uint8_t want = landed ? copied : 0xFF;
        if (got != want) bad++;
      }
    EXPECT_EQ(bad, 0) << "stage " << stage << " chunk " << chunk << (landed ? " should have landed" : " should be poison");
  };
  // the final state holds on any device
  for (int c = 0; c < 3; c++) expect_chunk(3, c, true);
  for (int c = 0; c < 2; c++) expect_chunk(2, c, true);
  expect_chunk(1, 0, true);
  cudaFree(dsrc);
  cudaFree(dsnap);
  if (!kCpuLayer) {
    GTEST_SKIP() << "reads of in-flight cp.async destinations are undefined on a GPU";
  } else {
    // the emulation performs copies at the wait that retires their group, never earlier
    for (int c = 0; c < 3; c++) expect_chunk(0, c, false);  // read before any wait: poison
    expect_chunk(1, 1, false);                              // wait_group<1> leaves the newest group pending
    expect_chunk(1, 2, false);
    expect_chunk(2, 2, false);  // wait_group<0> does not retire uncommitted copies
  }
}

}  // namespace
