// test_layernorm.cu — LayerNorm forward, fused residual + LayerNorm forward, LayerNorm backward vs
// ref::layernorm_forward / ref::residual_forward / ref::layernorm_backward, fp32 and bf16.
//
// Tolerances use per-element term scales (kernel_test_util.h): an output computed from terms t_k can differ
// between two summation orders by a few ulp of Σ|t_k|, so atol_i = (1e-5 fp32 | 2^-8 bf16) × Σ|t_k| for element i.
#include "tests/kernels/kernel_test_util.h"
#include "kernels/layernorm.cuh"
#include "cpu/ops.h"

using namespace ktest;

// Row-wise inputs like the residual stream: non-zero mean, spread ~1.
static std::vector<float> rows_input(size_t n, uint64_t seed) { return random_vec(n, seed, -1.5f, 2.5f); }

// Scale of each LN output y = (x − mean)·rstd·w + b: the terms are x and mean (their difference cancels), then
// ·rstd·w, plus b. So (|x| + |mean|)·rstd·|w| + |b|: a few-ulp error in mean shifts every output of the row.
static std::vector<float> ln_out_scale(const std::vector<float>& x, const std::vector<float>& w,
                                       const std::vector<float>& b, const std::vector<float>& mean,
                                       const std::vector<float>& rstd, int N, int C) {
  std::vector<float> s((size_t)N * C);
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      const size_t i = (size_t)n * C + c;
      s[i] = (std::fabs(x[i]) + std::fabs(mean[n])) * rstd[n] * std::fabs(w[c]) + std::fabs(b[c]);
    }
  return s;
}

template <class T>
void check_forward(const Shape& s, const std::string& tag) {
  SCOPED_TRACE(tag);
  const int N = s.B * s.T, C = s.C;
  const auto x = round_through<T>(rows_input((size_t)N * C, 51));
  const auto w = round_through<T>(random_vec(C, 52, 0.5f, 1.5f)), b = round_through<T>(random_vec(C, 53));
  std::vector<float> out_ref((size_t)N * C), mean_ref(N), rstd_ref(N);
  ref::layernorm_forward(out_ref.data(), mean_ref.data(), rstd_ref.data(), x.data(), w.data(), b.data(), N, C);

  DeviceArray<T> d_x(x), d_w(w), d_b(b), d_out((size_t)N * C);
  DeviceArray<float> d_mean(N), d_rstd(N);
  kern::layernorm_forward(d_out.ptr, d_mean.ptr, d_rstd.ptr, d_x.ptr, d_w.ptr, d_b.ptr, N, C, 0);
  const auto scale = ln_out_scale(x, w, b, mean_ref, rstd_ref, N, C);
  compare(tag + " layernorm out", d_out.download(), out_ref, tolerance<T>(1.0), &scale);
  // mean/rstd are fp32 in both precisions: a C-term sum of |x| <= 2.5
  compare(tag + " layernorm mean", d_mean.download(), mean_ref, tolerance<float>(2.5));
  compare(tag + " layernorm rstd", d_rstd.download(), rstd_ref, tolerance<float>(0.0));
}

template <class T>
void check_fused_residual(const Shape& s, const std::string& tag) {
  SCOPED_TRACE(tag);
  const int N = s.B * s.T, C = s.C;
  const size_t n = (size_t)N * C;
  const auto a = round_through<T>(rows_input(n, 61)), bb = round_through<T>(random_vec(n, 62));
  const auto w = round_through<T>(random_vec(C, 63, 0.5f, 1.5f)), b = round_through<T>(random_vec(C, 64));
  // Reference = the unfused path: residual (stored as floatX), then LayerNorm of the stored residual.
  std::vector<float> res_ref(n), out_ref(n), mean_ref(N), rstd_ref(N);
  ref::residual_forward(res_ref.data(), a.data(), bb.data(), n);
  res_ref = round_through<T>(res_ref);
  ref::layernorm_forward(out_ref.data(), mean_ref.data(), rstd_ref.data(), res_ref.data(), w.data(), b.data(), N, C);

  DeviceArray<T> d_a(a), d_bb(bb), d_w(w), d_b(b), d_res(n), d_out(n);
  DeviceArray<float> d_mean(N), d_rstd(N);
  kern::fused_residual_layernorm_forward(d_res.ptr, d_out.ptr, d_mean.ptr, d_rstd.ptr, d_a.ptr, d_bb.ptr, d_w.ptr,
                                         d_b.ptr, N, C, 0);
  compare(tag + " fused residual", d_res.download(), res_ref, tolerance<T>(0.0));  // one add, rounded once
  const auto scale = ln_out_scale(res_ref, w, b, mean_ref, rstd_ref, N, C);
  compare(tag + " fused layernorm out", d_out.download(), out_ref, tolerance<T>(1.0), &scale);
  compare(tag + " fused mean", d_mean.download(), mean_ref, tolerance<float>(3.5));
  compare(tag + " fused rstd", d_rstd.download(), rstd_ref, tolerance<float>(0.0));
}

template <class T>
void check_backward(const Shape& s, const std::string& tag, int max_blocks = kern::kLayerNormBwdMaxBlocks) {
  SCOPED_TRACE(tag);
  const int N = s.B * s.T, C = s.C;
  const size_t n = (size_t)N * C;
  const auto x = round_through<T>(rows_input(n, 71)), dout = round_through<T>(random_vec(n, 72));
  const auto w = round_through<T>(random_vec(C, 73, 0.5f, 1.5f)), b = round_through<T>(random_vec(C, 74));
  const auto dinp0 = round_through<T>(random_vec(n, 75));
  const auto dw0 = round_through<T>(random_vec(C, 76)), db0 = round_through<T>(random_vec(C, 77));
  std::vector<float> y(n), mean(N), rstd(N);
  ref::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
  std::vector<float> dinp_ref = dinp0, dw_ref = dw0, db_ref = db0;
  ref::layernorm_backward(dinp_ref.data(), dw_ref.data(), db_ref.data(), dout.data(), x.data(), w.data(), mean.data(),
                          rstd.data(), N, C);

  // term scales: dinp = dinp0 + rstd·(w·dy − m1 − x̂·m2); dweight = dw0 + Σ_n x̂·dy; dbias = db0 + Σ_n dy
  std::vector<float> s_dinp(n), s_dw(dw0.size()), s_db(db0.size());
  for (int c = 0; c < C; c++) {
    s_dw[c] = std::fabs(dw0[c]);
    s_db[c] = std::fabs(db0[c]);
  }
  for (int r = 0; r < N; r++) {
    double m1 = 0, m2 = 0;
    for (int c = 0; c < C; c++) {
      const size_t i = (size_t)r * C + c;
      const double xhat = (x[i] - mean[r]) * rstd[r];
      m1 += w[c] * dout[i];
      m2 += w[c] * dout[i] * xhat;
      s_dw[c] += std::fabs(xhat * dout[i]);
      s_db[c] += std::fabs(dout[i]);
    }
    m1 /= C;
    m2 /= C;
    for (int c = 0; c < C; c++) {
      const size_t i = (size_t)r * C + c;
      const double xhat = (x[i] - mean[r]) * rstd[r];
      s_dinp[i] = std::fabs(dinp0[i]) + rstd[r] * (std::fabs(w[c] * dout[i]) + std::fabs(m1) + std::fabs(xhat * m2));
    }
  }

  DeviceArray<T> d_x(x), d_dout(dout), d_w(w), d_dinp(dinp0), d_dw(dw0), d_db(db0);
  DeviceArray<float> d_mean(mean), d_rstd(rstd), d_scratch(kern::layernorm_backward_scratch_floats(N, C));
  kern::layernorm_backward(d_dinp.ptr, d_dw.ptr, d_db.ptr, d_scratch.ptr, d_dout.ptr, d_x.ptr, d_w.ptr, d_mean.ptr,
                           d_rstd.ptr, N, C, 0, max_blocks);
  compare(tag + " layernorm_backward dinp", d_dinp.download(), dinp_ref, tolerance<T>(1.0), &s_dinp);
  compare(tag + " layernorm_backward dweight", d_dw.download(), dw_ref, tolerance<T>(1.0), &s_dw);
  compare(tag + " layernorm_backward dbias", d_db.download(), db_ref, tolerance<T>(1.0), &s_db);

  // Deterministic: the same inputs give the same bits (no atomics anywhere in the result).
  const auto dw_first = d_dw.download_raw();
  d_dw.upload(dw0);
  d_db.upload(db0);
  d_dinp.upload(dinp0);
  d_scratch.poison();
  kern::layernorm_backward(d_dinp.ptr, d_dw.ptr, d_db.ptr, d_scratch.ptr, d_dout.ptr, d_x.ptr, d_w.ptr, d_mean.ptr,
                           d_rstd.ptr, N, C, 0, max_blocks);
  const auto dw_second = d_dw.download_raw();
  EXPECT_EQ(0, std::memcmp(dw_first.data(), dw_second.data(), dw_first.size() * sizeof(T))) << "not deterministic";
}

template <class T>
void check_all_shapes() {
  for (const Shape& s : test_shapes()) {
    const std::string tag = std::string(type_name<T>()) + " " + s.name;
    check_forward<T>(s, tag);
    check_fused_residual<T>(s, tag);
    check_backward<T>(s, tag);
  }
}

TEST(KernelLayerNorm, Fp32) { check_all_shapes<float>(); }
TEST(KernelLayerNorm, Bf16) { check_all_shapes<__nv_bfloat16>(); }

// Backward blocks that loop over many rows (grid capped at 3 blocks; the last iteration partly past N), and a tiny C
// where many rows are in flight per block.
TEST(KernelLayerNorm, BackwardLoopingBlocks) {
  for (const Shape& s : test_shapes()) {
    check_backward<float>(s, std::string("fp32 3 blocks ") + s.name, 3);
    check_backward<__nv_bfloat16>(s, std::string("bf16 3 blocks ") + s.name, 3);
  }
  const Shape small_c{2, 37, 8, "rows 74 C8"};
  check_forward<float>(small_c, "fp32 rows 74 C8");
  check_backward<float>(small_c, "fp32 rows 74 C8");
  check_backward<float>(small_c, "fp32 rows 74 C8 2 blocks", 2);
}
