// test_model_ops.cpp — reference ops against naive loops and closed-form cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/ops.h"

namespace {

std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Double-precision naive linear layer products.
// mag: Σ|terms| of each output (the scale of its rounding error).
void naive_forward(std::vector<double>& out, std::vector<double>& mag, const std::vector<float>& x,
                   const std::vector<float>& w, const std::vector<float>& b, int N, int C, int OC) {
  out.assign((size_t)N * OC, 0.0);
  mag.assign((size_t)N * OC, 0.0);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = b.empty() ? 0.0 : b[o], a = std::fabs(s);
      for (int c = 0; c < C; c++) {
        const double t = (double)x[(size_t)n * C + c] * w[(size_t)o * C + c];
        s += t;
        a += std::fabs(t);
      }
      out[(size_t)n * OC + o] = s;
      mag[(size_t)n * OC + o] = a;
    }
}

// Error of a K-term fp32 sum in units of its derived bound (tests/test_model_gemm.cpp): the packed GEMM sums FMA chains
// of ≤ KC = 256 terms per K block, then the ≤ ceil(K/256) block sums and the initial value in order, so
// |got − exact| ≤ (min(K, 256) + ceil(K/256) + 2)·u·Σ|terms| (u = 2^-24, any CPU, FMA or not); ratio ≤ 1 must hold.
// (Was |got − exact| / max(1, |exact|) < 1e-5, below this worst case: Σ|terms| reaches ~80 here.)
double err_ratio(double got, double want, double mag, int K) {
  const double bound = (std::min(K, 256) + (K + 255) / 256 + 2) * std::ldexp(1.0, -24) * mag + 1e-30;
  return std::fabs(got - want) / bound;
}

// Odd sizes exercise every edge path of the packed GEMM (partial MR/NR/KC/MC/NC tiles).
struct MatmulCase { int N, C, OC; };
class MatmulTest : public ::testing::TestWithParam<MatmulCase> {};

TEST_P(MatmulTest, ForwardAndBackwardMatchNaive) {
  const auto [N, C, OC] = GetParam();
  auto x = randn((size_t)N * C, 1), w = randn((size_t)OC * C, 2, 0.1f), b = randn(OC, 3);
  auto dy = randn((size_t)N * OC, 4);
  std::vector<float> out((size_t)N * OC);
  ref::matmul_forward(out.data(), x.data(), w.data(), b.data(), N, C, OC);
  std::vector<double> want, mag;
  naive_forward(want, mag, x, w, b, N, C, OC);
  double maxerr = 0;
  for (size_t i = 0; i < out.size(); i++) maxerr = std::max(maxerr, err_ratio(out[i], want[i], mag[i], C));
  EXPECT_LE(maxerr, 1.0);

  // backward, accumulating onto non-zero initial gradients (+= contract)
  std::vector<float> dx((size_t)N * C, 0.5f), dw((size_t)OC * C, -0.25f), db(OC, 1.0f);
  ref::matmul_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), N, C, OC);
  double ex = 0, ew = 0, eb = 0;
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      double s = 0.5, a = 0.5;
      for (int o = 0; o < OC; o++) {
        const double t = (double)dy[(size_t)n * OC + o] * w[(size_t)o * C + c];
        s += t;
        a += std::fabs(t);
      }
      ex = std::max(ex, err_ratio(dx[(size_t)n * C + c], s, a, OC));
    }
  for (int o = 0; o < OC; o++) {
    double sb = 1.0, ab = 1.0;
    for (int n = 0; n < N; n++) {
      sb += dy[(size_t)n * OC + o];
      ab += std::fabs(dy[(size_t)n * OC + o]);
    }
    eb = std::max(eb, err_ratio(db[o], sb, ab, N));
    for (int c = 0; c < C; c++) {
      double s = -0.25, a = 0.25;
      for (int n = 0; n < N; n++) {
        const double t = (double)dy[(size_t)n * OC + o] * x[(size_t)n * C + c];
        s += t;
        a += std::fabs(t);
      }
      ew = std::max(ew, err_ratio(dw[(size_t)o * C + c], s, a, N));
    }
  }
  std::printf("  N=%d C=%d OC=%d error/bound: out %.3f dx %.3f dw %.3f db %.3f\n", N, C, OC, maxerr, ex, ew, eb);
  EXPECT_LE(ex, 1.0);
  EXPECT_LE(ew, 1.0);
  EXPECT_LE(eb, 1.0);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulTest,
                         ::testing::Values(MatmulCase{1, 1, 1}, MatmulCase{8, 32, 32}, MatmulCase{13, 37, 45},
                                           MatmulCase{130, 300, 530}, MatmulCase{64, 96, 2304 / 8}));

// gemm_accumulate on the layouts matmul never uses: A with both strides != 1 (packed per panel), B column-major.
TEST(Gemm, StridedLayoutsMatchNaive) {
  const int M = 37, N = 70, K = 300;
  auto a = randn((size_t)M * K * 2, 11), b = randn((size_t)K * N, 12);
  std::vector<float> c((size_t)M * N, 1.0f);
  // A(i,k) = a[i*2 + k*2*M] (rs = 2, cs = 2M); B(k,j) = b[j*K + k] (column-major)
  ref::gemm_accumulate(c.data(), N, ref::MatView{a.data(), 2, (size_t)2 * M}, ref::MatView{b.data(), 1, (size_t)K}, M,
                       N, K);
  double maxerr = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 1.0, mag = 1.0;  // exact sum and Σ|terms| (the scale of fp32 rounding error)
      for (int k = 0; k < K; k++) {
        const double t = (double)a[(size_t)i * 2 + (size_t)k * 2 * M] * b[(size_t)j * K + k];
        s += t;
        mag += std::fabs(t);
      }
      maxerr = std::max(maxerr, std::fabs(c[(size_t)i * N + j] - s) / mag);
    }
  // |c − exact| / Σ|terms| ≤ (256 + ceil(300/256) + 2)·u = 260·2^-24 = 1.55e-5 (see err_ratio; was 1e-6, below the
  // worst case for K = 300)
  std::printf("  strided M=%d N=%d K=%d: max |err| / Σ|terms| %.3e (bound %.3e)\n", M, N, K, maxerr, 260 * std::ldexp(1.0, -24));
  EXPECT_LE(maxerr, 260 * std::ldexp(1.0, -24));
}

}  // namespace
