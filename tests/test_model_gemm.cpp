// test_model_gemm.cpp — the packed GEMM (cpu/gemm.h) against a double-precision triple loop, on every operand
// layout the model uses (X·Wᵀ, dY·W, dYᵀ·X) plus a fully strided one, on shapes that hit every edge path:
// 1×1×1, K = 1, M/N/K not multiples of the 8×48 tile or of the KC/NC/MC blocks, large K, and both thread counts.
//
// Tolerance: the kernel sums each C element as fp32 FMA chains of at most KC = 256 terms per K block, then adds
// the ≤ ceil(K/256) block sums (and C or the bias) in order. Recursive fp32 summation of n terms has error at
// most n·u·Σ|terms| (u = 2^-24, first order), so |c − exact| ≤ (256 + ceil(K/256) + 2)·u·Σ|terms| must hold for
// every element. A dropped or doubled product would violate it (one term of random data is ~1/K of Σ|terms|,
// far above the bound for the K used here, and for K ≤ 2 it is the whole sum).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "cpu/gemm.h"

namespace {

enum class Layout { kXWt, kDyW, kDytX, kStrided };
const char* layout_name(Layout l) {
  switch (l) {
    case Layout::kXWt: return "X*Wt (forward)";
    case Layout::kDyW: return "dY*W (input grad)";
    case Layout::kDytX: return "dYt*X (weight grad)";
    default: return "strided";
  }
}

std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct Operands {
  std::vector<float> a, b;
  ref::MatView A, B;
};

// A (M×K) and B (K×N) stored the way the model stores them for that product.
Operands make_operands(Layout l, int M, int N, int K) {
  Operands o;
  const size_t s = 3;  // spacing for the strided layout
  o.a = randn((size_t)M * K * (l == Layout::kStrided ? 2 : 1), 100 + M);
  o.b = randn((size_t)K * N * (l == Layout::kStrided ? s * s : 1), 200 + N);
  switch (l) {
    case Layout::kXWt:  // A = X (M,K) row-major; B = Wᵀ with W (N,K) row-major
      o.A = {o.a.data(), (size_t)K, 1};
      o.B = {o.b.data(), 1, (size_t)K};
      break;
    case Layout::kDyW:  // A = dY (M,K) row-major; B = W (K,N) row-major
      o.A = {o.a.data(), (size_t)K, 1};
      o.B = {o.b.data(), (size_t)N, 1};
      break;
    case Layout::kDytX:  // A = dYᵀ with dY (K,M) row-major; B = X (K,N) row-major
      o.A = {o.a.data(), 1, (size_t)M};
      o.B = {o.b.data(), (size_t)N, 1};
      break;
    case Layout::kStrided:  // no unit stride anywhere
      o.A = {o.a.data(), 2, (size_t)2 * M};
      o.B = {o.b.data(), s, s * K};
      break;
  }
  return o;
}

float at(const ref::MatView& v, int i, int j) { return v.p[(size_t)i * v.rs + (size_t)j * v.cs]; }

struct GemmCase { int M, N, K; };

// Runs gemm with C embedded in a wider buffer (ldc = N + 5, padding must stay untouched) and checks every element.
// Returns C (without padding) for the thread-count comparison.
std::vector<float> check_gemm(Layout l, GemmCase gc, bool accumulate, bool with_bias, int threads) {
  const auto [M, N, K] = gc;
  const Operands o = make_operands(l, M, N, K);
  const size_t ldc = (size_t)N + 5;
  const float sentinel = 12345.0f;
  std::vector<float> c0 = randn((size_t)M * ldc, 7), bias = randn(N, 8);
  for (int i = 0; i < M; i++)
    for (size_t j = N; j < ldc; j++) c0[i * ldc + j] = sentinel;
  std::vector<float> c = c0;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  ref::gemm(c.data(), ldc, o.A, o.B, M, N, K, accumulate, with_bias ? bias.data() : nullptr);
  omp_set_num_threads(saved);

  const double u = std::ldexp(1.0, -24);
  const double nterms = 256 + (K + 255) / 256 + 2;
  double worst = 0;  // max over elements of |err| / (bound)
  std::vector<float> out((size_t)M * N);
  for (int i = 0; i < M; i++) {
    for (int j = 0; j < N; j++) {
      double s = 0, mag = 0;
      if (accumulate) s = c0[i * ldc + j];
      else if (with_bias) s = bias[j];
      mag = std::fabs(s);
      for (int k = 0; k < K; k++) {
        const double t = (double)at(o.A, i, k) * at(o.B, k, j);
        s += t;
        mag += std::fabs(t);
      }
      const double got = c[i * ldc + j];
      const double bound = nterms * u * mag + 1e-30;
      worst = std::max(worst, std::fabs(got - s) / bound);
      out[(size_t)i * N + j] = c[i * ldc + j];
    }
    for (size_t j = N; j < ldc; j++) EXPECT_EQ(c[i * ldc + j], sentinel) << "padding column " << j << " of row " << i;
  }
  EXPECT_LE(worst, 1.0) << layout_name(l) << " M=" << M << " N=" << N << " K=" << K << " accumulate=" << accumulate
                        << " bias=" << with_bias << " threads=" << threads << ": error / bound = " << worst;
  return out;
}

class GemmShapes : public ::testing::TestWithParam<GemmCase> {};

TEST_P(GemmShapes, EveryLayoutModeAndThreadCountMatchesNaive) {
  const GemmCase gc = GetParam();
  for (Layout l : {Layout::kXWt, Layout::kDyW, Layout::kDytX, Layout::kStrided}) {
    for (int mode = 0; mode < 3; mode++) {  // C += A·B;  C = A·B;  C = A·B + bias
      const bool accumulate = mode == 0, with_bias = mode == 2;
      const std::vector<float> one = check_gemm(l, gc, accumulate, with_bias, 1);
      const std::vector<float> two = check_gemm(l, gc, accumulate, with_bias, 2);
      // same bits for any thread count (threads only split rows or columns of C)
      EXPECT_TRUE(one == two) << layout_name(l) << " differs between 1 and 2 threads, mode " << mode;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GemmShapes,
    ::testing::Values(GemmCase{1, 1, 1},        // smallest
                      GemmCase{1, 50, 1},       // one row, K = 1
                      GemmCase{13, 49, 1},      // K = 1, partial tiles both ways
                      GemmCase{8, 48, 256},     // exactly one tile and one K block
                      GemmCase{9, 49, 257},     // one past each
                      GemmCase{7, 1, 300},      // one column
                      GemmCase{37, 101, 771},   // several K blocks, odd everything
                      GemmCase{12, 60, 3001},   // large K
                      GemmCase{200, 1700, 30},  // several column blocks (A packed once), 2 threads split columns
                      GemmCase{1100, 50, 100},  // row blocks beyond MC, 2 threads split rows
                      GemmCase{64, 96, 768}),   // model-like, multiple of the tile
    [](const ::testing::TestParamInfo<GemmCase>& info) {
      return "M" + std::to_string(info.param.M) + "_N" + std::to_string(info.param.N) + "_K" +
             std::to_string(info.param.K);
    });

// K = 0: overwrite gives bias (or zeros), accumulate leaves C alone.
TEST(Gemm, EmptyK) {
  std::vector<float> c(6, 3.0f), bias{1, 2, 3};
  const float dummy = 0;
  ref::gemm(c.data(), 3, {&dummy, 0, 0}, {&dummy, 0, 0}, 2, 3, 0, true);
  EXPECT_EQ(c, std::vector<float>(6, 3.0f));
  ref::gemm(c.data(), 3, {&dummy, 0, 0}, {&dummy, 0, 0}, 2, 3, 0, false, bias.data());
  EXPECT_EQ(c, (std::vector<float>{1, 2, 3, 1, 2, 3}));
  ref::gemm(c.data(), 3, {&dummy, 0, 0}, {&dummy, 0, 0}, 2, 3, 0, false);
  EXPECT_EQ(c, std::vector<float>(6, 0.0f));
}

}  // namespace
