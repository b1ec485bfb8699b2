// test_cls_head.cu — kernels/cls_head.cuh against the reference ops (cpu/ops.h), fp32 and bf16.
//
// Checked: the whole classification head forward (last-token gather, C → N matmul, N-class cross-entropy with
// mean loss and dlogits, labels -100 ignored) and backward (dlast = dlogits·W, dW and db accumulated onto
// existing values, dlnf zero except position T-1 — every element compared, so the scatter may not leave
// anything unwritten), a frozen head (dW/db null: left untouched), and scaled_add in both modes.
// Tolerances (kernel_test_util.h): logits and dlast are sums of C (resp. N) products: atol = rtol-scale × Σ|terms|;
// the loss uses the classifier test's term size (max|logit| + log N); dW/db also carry the accumulated initial
// values. bf16: every stored bf16 intermediate (last, logits, dlogits) is one more rounding, covered by rtol 2^-7.
#include "kernels/cls_head.cuh"
#include "tests/kernels/kernel_test_util.h"
#include "cpu/ops.h"

#include <cmath>
#include <vector>

namespace {

using ktest::compare;
using ktest::DeviceArray;
using ktest::DeviceInts;
using ktest::max_abs;
using ktest::random_vec;
using ktest::round_through;
using ktest::tolerance;

struct HeadCase {
  int B, T, C, N;
  const char* name;
};
const std::vector<HeadCase>& cases() {
  static const std::vector<HeadCase> c = {
      {4, 7, 32, 2, "spam B4 T7 C32 N2"},
      {3, 5, 37, 3, "odd B3 T5 C37 N3"},
      {2, 1, 64, 5, "T1 B2 C64 N5"},
      {8, 16, 128, 2, "B8 T16 C128 N2"},
  };
  return c;
}

template <class T> class ClsHeadTest : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(ClsHeadTest, Types);

TYPED_TEST(ClsHeadTest, ForwardBackwardMatchReference) {
  using T = TypeParam;
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    std::printf("[%s %s]\n", ktest::type_name<T>(), c.name);
    const size_t btc = (size_t)c.B * c.T * c.C;
    const auto lnf = round_through<T>(random_vec(btc, 11, -2.0f, 2.0f));
    const auto w = round_through<T>(random_vec((size_t)c.N * c.C, 12, -0.3f, 0.3f));
    const auto bias = round_through<T>(random_vec(c.N, 13, -0.3f, 0.3f));
    const auto dw0 = round_through<T>(random_vec((size_t)c.N * c.C, 14, -0.1f, 0.1f));  // existing gradient
    const auto db0 = round_through<T>(random_vec(c.N, 15, -0.1f, 0.1f));
    std::vector<int> labels = ktest::random_tokens(c.B, c.N, 16);
    if (c.B > 2) labels[1] = -100;  // an ignored row: loss 0, no gradient
    int valid = 0;
    for (int l : labels) valid += l != -100;

    // reference
    std::vector<float> last((size_t)c.B * c.C), logits((size_t)c.B * c.N), losses(c.B), probs((size_t)c.B * c.N),
        dlogits((size_t)c.B * c.N, 0.0f), dlast((size_t)c.B * c.C, 0.0f), dw = dw0, db = db0, dlnf(btc, 0.0f);
    for (int b = 0; b < c.B; b++)
      for (int k = 0; k < c.C; k++) last[(size_t)b * c.C + k] = lnf[((size_t)b * c.T + c.T - 1) * c.C + k];
    ref::matmul_forward(logits.data(), last.data(), w.data(), bias.data(), c.B, c.C, c.N);
    const float mean = ref::softmax_crossentropy_forward(losses.data(), probs.data(), logits.data(), labels.data(),
                                                         c.B, c.N, c.N);
    ref::softmax_crossentropy_backward(dlogits.data(), probs.data(), labels.data(), c.B, c.N, c.N, 1.0f / valid);
    ref::matmul_backward(dlast.data(), dw.data(), db.data(), dlogits.data(), last.data(), w.data(), c.B, c.C, c.N);
    for (int b = 0; b < c.B; b++)
      for (int k = 0; k < c.C; k++) dlnf[((size_t)b * c.T + c.T - 1) * c.C + k] = dlast[(size_t)b * c.C + k];

    // device
    DeviceArray<T> d_lnf(lnf), d_w(w), d_bias(bias), d_dw(dw0), d_db(db0);
    DeviceArray<T> d_last((size_t)c.B * c.C), d_logits((size_t)c.B * c.N), d_dlogits((size_t)c.B * c.N),
        d_dlast((size_t)c.B * c.C), d_dlnf(btc);
    DeviceArray<float> d_losses(c.B), d_mean(1), d_scratch(kern::matmul_backward_scratch_floats(c.B, c.N));
    DeviceInts d_labels(labels), d_valid(std::vector<int>{-1});
    kern::cls_head_forward(d_logits.ptr, d_last.ptr, d_dlogits.ptr, d_losses.ptr, d_mean.ptr, d_valid.ptr, d_lnf.ptr,
                           d_w.ptr, d_bias.ptr, d_labels.ptr, c.B, c.T, c.C, c.N, 0);
    kern::cls_head_backward(d_dlnf.ptr, d_dlast.ptr, d_dw.ptr, d_db.ptr, d_scratch.ptr, d_dlogits.ptr, d_last.ptr,
                            d_w.ptr, c.B, c.T, c.C, c.N, 0);
    CUDA_CHECK(cudaDeviceSynchronize());

    const double x_terms = max_abs(lnf) * max_abs(w) * c.C + max_abs(bias);
    const double loss_terms = max_abs(logits) + std::log((double)c.N);
    const double dlogit_scale = 1.0 / valid;
    const double dlast_terms = dlogit_scale * max_abs(w) * c.N;
    const double dw_terms = dlogit_scale * max_abs(lnf) * c.B + max_abs(dw0);
    const double db_terms = dlogit_scale * c.B + max_abs(db0);
    compare("last (gather)", d_last.download(), last, tolerance<float>(0.0));  // a copy: exact in both types
    compare("logits", d_logits.download(), logits, tolerance<T>(x_terms));
    compare("losses", d_losses.download(), losses, tolerance<T>(loss_terms));
    compare("mean loss", d_mean.download(), {mean}, tolerance<T>(loss_terms));
    compare("dlogits", d_dlogits.download(), dlogits, tolerance<T>(dlogit_scale));
    compare("dlast", d_dlast.download(), dlast, tolerance<T>(dlast_terms));
    compare("dW (accumulated)", d_dw.download(), dw, tolerance<T>(dw_terms));
    compare("db (accumulated)", d_db.download(), db, tolerance<T>(db_terms));
    compare("dlnf (scatter, zeros elsewhere)", d_dlnf.download(), dlnf, tolerance<T>(dlast_terms));
  }
}

TYPED_TEST(ClsHeadTest, FrozenHeadGetsNoGradient) {
  using T = TypeParam;
  const int B = 3, Tn = 4, C = 16, N = 2;
  const auto dlogits = round_through<T>(random_vec((size_t)B * N, 21, -0.5f, 0.5f));
  const auto last = round_through<T>(random_vec((size_t)B * C, 22));
  const auto w = round_through<T>(random_vec((size_t)N * C, 23));
  DeviceArray<T> d_dlogits(dlogits), d_last(last), d_w(w), d_dlast((size_t)B * C), d_dlnf((size_t)B * Tn * C);
  kern::cls_head_backward(d_dlnf.ptr, d_dlast.ptr, (T*)nullptr, (T*)nullptr, (float*)nullptr, d_dlogits.ptr,
                          d_last.ptr, d_w.ptr, B, Tn, C, N, 0);
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> dlast((size_t)B * C, 0.0f), unused_dw((size_t)N * C);
  ref::matmul_backward(dlast.data(), unused_dw.data(), nullptr, dlogits.data(), last.data(), w.data(), B, C, N, false);
  compare("dlast (frozen head)", d_dlast.download(), dlast, tolerance<T>(max_abs(dlogits) * max_abs(w) * N));
}

TYPED_TEST(ClsHeadTest, ScaledAdd) {
  using T = TypeParam;
  const size_t n = 1000;
  const auto out0 = round_through<T>(random_vec(n, 31)), x = round_through<T>(random_vec(n, 32));
  DeviceArray<T> d_out(out0), d_x(x), d_set(n);
  kern::scaled_add(d_out.ptr, d_x.ptr, 0.75f, n, true, 0);
  kern::scaled_add(d_set.ptr, d_x.ptr, -2.0f, n, false, 0);
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> add(n), set(n);
  for (size_t i = 0; i < n; i++) add[i] = out0[i] + 0.75f * x[i], set[i] = -2.0f * x[i];
  compare("out += s·x", d_out.download(), add, tolerance<T>(2.0));
  compare("out = s·x", d_set.download(), set, tolerance<T>(2.0));
}

}  // namespace
