// test_attention.cu — kernels/attention.cuh (flash-style, online softmax) against ref::attention_forward/backward.
//
// Checked element by element (outputs poisoned first): out (B,T,C), the saved logsumexp (B,NH,T) against a
// double-precision recomputation, and dq, dk, dv of dqkv (B,T,3C), without dropout and with attention
// dropout p=0.1 (the kernel must reproduce the reference's Philox mask exactly, else the errors are O(1)).
// Shapes: tiny GPT-2 (C=32, NH=4, hs=8, T=16), odd (T=5, hs=16), medium (hs=64 like GPT-2, T=80: two tiles,
// the second one partial), and hs=128 (32-row tiles).
// Tolerance (kernel_test_util.h): out is a convex combination of v rows (scaled by 1/(1-p) under dropout), so
// atol = rtol-scale × max|v|/(1-p). Gradients: atol = rtol-scale × max|reference gradient| of that part; their
// terms (p·(dp − D), p·dout) are bounded by the largest gradient entries' size. The kernel recomputes
// D = Σ p·dp in fp32 (not dout·out: in bf16 that reads the rounded output, and the error, amplified through
// Σ_i p_ij over many queries, measured up to 1.25× this bound for dk), so bf16 sees only input/output rounding.
#include "kernels/attention.cuh"
#include "tests/kernels/attention_test_ref.h"
#include "tests/kernels/kernel_test_util.h"
#include "cpu/ops.h"

#include <cmath>
#include <cstring>
#include <vector>

namespace {

using ktest::compare;
using ktest::DeviceArray;
using ktest::max_abs;
using ktest::random_vec;
using ktest::round_through;
using ktest::tolerance;

struct AttShape {
  int B, T, C, NH;
  const char* name;
};
const std::vector<AttShape>& att_shapes() {
  static const std::vector<AttShape> s = {
      {2, 16, 32, 4, "tiny B2 T16 C32 NH4 (hs 8)"},
      {1, 5, 48, 3, "odd B1 T5 C48 NH3 (hs 16)"},
      {2, 80, 128, 2, "medium B2 T80 C128 NH2 (hs 64)"},
      {1, 40, 256, 2, "big-head B1 T40 C256 NH2 (hs 128)"},
  };
  return s;
}

using ktest::part;
using ktest::ref_lse;

template <class T> class AttentionTest : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(AttentionTest, Types);

TYPED_TEST(AttentionTest, ForwardBackwardMatchReference) {
  using T = TypeParam;
  for (const auto& s : att_shapes()) {
    for (float p : {0.0f, 0.1f}) {
      SCOPED_TRACE(std::string(s.name) + " dropout " + std::to_string(p));
      std::printf("[%s %s dropout %.1f]\n", ktest::type_name<T>(), s.name, p);
      const int B = s.B, Tn = s.T, C = s.C, NH = s.NH;
      llm::DropoutSpec drop;
      drop.p = p;
      drop.seed = 0x1234567890abcdefull;
      drop.stream = llm::dropout_stream(1, llm::kDropAttn);
      const size_t nqkv = (size_t)B * Tn * 3 * C, nout = (size_t)B * Tn * C;
      const auto qkv = round_through<T>(random_vec(nqkv, 71, -2.0f, 2.0f));  // scores spread beyond ±1
      const auto dout = round_through<T>(random_vec(nout, 72));

      std::vector<float> r_out(nout), r_att((size_t)B * NH * Tn * Tn), r_dqkv(nqkv, 0.0f);
      ref::attention_forward(r_out.data(), r_att.data(), qkv.data(), B, Tn, C, NH, drop);
      ref::attention_backward(r_dqkv.data(), dout.data(), qkv.data(), r_att.data(), B, Tn, C, NH, drop);

      DeviceArray<T> d_qkv(qkv), d_out(nout), d_dout(dout), d_dqkv(nqkv);
      DeviceArray<float> d_lse((size_t)B * NH * Tn), d_scratch((size_t)B * NH * Tn);
      kern::attention_forward<T>(d_out.ptr, d_lse.ptr, d_qkv.ptr, B, Tn, C, NH, drop, 0);
      kern::attention_backward<T>(d_dqkv.ptr, d_scratch.ptr, d_dout.ptr, d_qkv.ptr, d_lse.ptr, B, Tn, C, NH, drop, 0);
      CUDA_CHECK(cudaDeviceSynchronize());

      const double vmax = max_abs(part(qkv, B, Tn, C, 2)) / (1.0 - p);
      compare("out", d_out.download(), r_out, tolerance<T>(vmax));
      // lse: fp32 in both modes; its terms are the scores (|s| ≤ max|q|·max|k|·sqrt(hs)) and log T
      const double smax = 4.0 * std::sqrt((double)C / NH) + std::log((double)Tn);
      compare("lse", d_lse.download(), ref_lse(qkv, B, Tn, C, NH), tolerance<float>(smax));
      const auto dqkv = d_dqkv.download();
      for (int which = 0; which < 3; which++) {
        const auto r = part(r_dqkv, B, Tn, C, which);
        compare(which == 0 ? "dq" : which == 1 ? "dk" : "dv", part(dqkv, B, Tn, C, which), r, tolerance<T>(max_abs(r)));
      }
    }
  }
}

// Same inputs twice -> identical bytes (no atomics anywhere in the backward).
TEST(AttentionKernel, BackwardDeterministic) {
  const int B = 1, Tn = 70, C = 64, NH = 2;
  const auto qkv = random_vec((size_t)B * Tn * 3 * C, 81), dout = random_vec((size_t)B * Tn * C, 82);
  llm::DropoutSpec drop;
  std::vector<std::vector<float>> res;
  for (int rep = 0; rep < 2; rep++) {
    DeviceArray<float> d_qkv(qkv), d_out((size_t)B * Tn * C), d_dout(dout), d_dqkv(qkv.size()), d_lse((size_t)B * NH * Tn),
        d_scratch((size_t)B * NH * Tn);
    kern::attention_forward<float>(d_out.ptr, d_lse.ptr, d_qkv.ptr, B, Tn, C, NH, drop, 0);
    kern::attention_backward<float>(d_dqkv.ptr, d_scratch.ptr, d_dout.ptr, d_qkv.ptr, d_lse.ptr, B, Tn, C, NH, drop, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    res.push_back(d_dqkv.download());
  }
  EXPECT_EQ(0, std::memcmp(res[0].data(), res[1].data(), res[0].size() * sizeof(float)));
}

TEST(AttentionKernel, RejectsUnsupportedShapes) {
  DeviceArray<float> qkv(3 * 48), out(48), lse(4);
  llm::DropoutSpec drop;
  EXPECT_THROW(kern::attention_forward<float>(out.ptr, lse.ptr, qkv.ptr, 1, 1, 48, 4, drop, 0), llm::Error);  // hs 12
  EXPECT_THROW(kern::attention_forward<float>(out.ptr, lse.ptr, qkv.ptr, 1, 1, 48, 5, drop, 0), llm::Error);  // C % NH
}

}  // namespace
