// test_matmul.cu — kernels/matmul.cuh against ref::matmul_forward/backward (+ ref::gelu_forward/backward).
//
// Every output is poisoned before the launch and compared element by element. Tolerance (kernel_test_util.h):
// rtol 1e-5 (fp32) / 2^-7 (bf16), atol = rtol-scale × S where S = max over outputs of Σ|terms| (the reference
// run on |inputs|): a dot product's rounding error is relative to the sum of the magnitudes it adds, not to a
// result that may have cancelled to ~0. Shapes: tiny GPT-2 (C=32), odd sizes (no dimension a multiple of the
// 64×64×16 tile), a medium one (C=768) and a tall one (N=600) that exercises the row-split dbias path.
// On a GPU build both backends are tested (own kernel and cuBLASLt); on the CPU layer Auto == own kernel.
#include "kernels/matmul.cuh"
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

struct MmShape {
  int N, C, OC;
  const char* name;
};
const std::vector<MmShape>& mm_shapes() {
  static const std::vector<MmShape> s = {
      {32, 32, 96, "tiny N32 C32 OC96"},     // qkv projection of the C=32 model, B2 T16
      {32, 128, 32, "tiny N32 C128 OC32"},   // fc-proj shape (C=4·32 -> 32)
      {15, 37, 41, "odd N15 C37 OC41"},      // nothing aligned to any tile size
      {64, 768, 136, "medium N64 C768 OC136"},
      {600, 8, 40, "tall N600 C8 OC40"},     // dbias split over rows (600/256 = 2 splits)
  };
  return s;
}

// Auto, not CublasLt: the odd shapes may be declined, and a test should see the own kernel's result then.
std::vector<kern::MatmulBackend> backends() {
  if (kern::matmul_vendor()) return {kern::MatmulBackend::Own, kern::MatmulBackend::Auto};
  return {kern::MatmulBackend::Own};
}
const char* backend_name(kern::MatmulBackend b) { return b == kern::MatmulBackend::Own ? "own" : "cublaslt"; }

// cuBLASLt may decline a problem (alignment, odd sizes, unsupported epilogue); the own kernel then runs. Say so,
// so a GPU log shows which cases really exercised cuBLASLt.
void note_fallback(kern::MatmulBackend be, int before) {
  if (be == kern::MatmulBackend::Auto && kern::matmul_vendor_declines() != before)
    std::printf("  note: cuBLASLt declined this case; the own kernel produced the result\n");
}

std::vector<float> absv(std::vector<float> v) {
  for (auto& x : v) x = std::fabs(x);
  return v;
}

template <class T> class MatmulTest : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(MatmulTest, Types);

TYPED_TEST(MatmulTest, ForwardBiasAndGelu) {
  using T = TypeParam;
  for (const auto& s : mm_shapes()) {
    for (auto be : backends()) {
      for (int variant = 0; variant < 3; variant++) {  // 0: bias, 1: no bias, 2: bias + fused GELU
        SCOPED_TRACE(std::string(s.name) + " " + backend_name(be) + " variant " + std::to_string(variant));
        std::printf("[%s %s %s variant %d]\n", ktest::type_name<T>(), s.name, backend_name(be), variant);
        const auto inp = round_through<T>(random_vec((size_t)s.N * s.C, 11));
        const auto w = round_through<T>(random_vec((size_t)s.OC * s.C, 12, -0.5f, 0.5f));
        const auto bias = round_through<T>(random_vec(s.OC, 13));
        const bool use_bias = variant != 1, gelu = variant == 2;

        std::vector<float> ref_pre((size_t)s.N * s.OC), scale((size_t)s.N * s.OC);
        ref::matmul_forward(ref_pre.data(), inp.data(), w.data(), use_bias ? bias.data() : nullptr, s.N, s.C, s.OC);
        const auto abias = absv(bias);
        ref::matmul_forward(scale.data(), absv(inp).data(), absv(w).data(), use_bias ? abias.data() : nullptr, s.N,
                            s.C, s.OC);
        const double S = max_abs(scale);

        DeviceArray<T> d_inp(inp), d_w(w), d_bias(bias), d_out((size_t)s.N * s.OC), d_pre((size_t)s.N * s.OC);
        const int declined = kern::matmul_vendor_declines();
        kern::matmul_forward<T>(d_out.ptr, gelu ? d_pre.ptr : nullptr, d_inp.ptr, d_w.ptr,
                                use_bias ? d_bias.ptr : nullptr, s.N, s.C, s.OC, 0, be);
        CUDA_CHECK(cudaDeviceSynchronize());
        note_fallback(be, declined);
        if (!gelu) {
          compare("out", d_out.download(), ref_pre, tolerance<T>(S));
        } else {
          std::vector<float> ref_out(ref_pre.size());
          ref::gelu_forward(ref_out.data(), ref_pre.data(), ref_pre.size());
          compare("pre_gelu", d_pre.download(), ref_pre, tolerance<T>(S));
          compare("gelu(out)", d_out.download(), ref_out, tolerance<T>(S));  // |gelu'| <= 1.13: same scale
        }
      }
    }
  }
}

TYPED_TEST(MatmulTest, Backward) {
  using T = TypeParam;
  for (const auto& s : mm_shapes()) {
    for (auto be : backends()) {
      for (int variant = 0; variant < 3; variant++) {  // 0: plain + scratch, 1: no scratch, 2: fused dGELU
        SCOPED_TRACE(std::string(s.name) + " " + backend_name(be) + " variant " + std::to_string(variant));
        std::printf("[%s %s %s variant %d]\n", ktest::type_name<T>(), s.name, backend_name(be), variant);
        const size_t nIn = (size_t)s.N * s.C, nOut = (size_t)s.N * s.OC, nW = (size_t)s.OC * s.C;
        const auto inp = round_through<T>(random_vec(nIn, 21));
        const auto w = round_through<T>(random_vec(nW, 22, -0.5f, 0.5f));
        const auto dout = round_through<T>(random_vec(nOut, 23));
        const auto dw0 = round_through<T>(random_vec(nW, 24, -0.1f, 0.1f));  // accumulated into
        const auto db0 = round_through<T>(random_vec(s.OC, 25, -0.1f, 0.1f));
        const auto pre = round_through<T>(random_vec(nIn, 26, -3.0f, 3.0f));  // pre-GELU input of this matmul
        const bool dgelu = variant == 2;

        // reference: dinp from zero, dweight/dbias accumulate onto dw0/db0
        std::vector<float> r_dinp(nIn, 0.0f), r_dw = dw0, r_db = db0;
        ref::matmul_backward(r_dinp.data(), r_dw.data(), r_db.data(), dout.data(), inp.data(), w.data(), s.N, s.C, s.OC);
        if (dgelu) {
          std::vector<float> g(nIn, 0.0f);
          ref::gelu_backward(g.data(), pre.data(), r_dinp.data(), nIn);
          r_dinp = g;
        }
        // term magnitudes: the same sums over |inputs|
        std::vector<float> s_dinp(nIn, 0.0f), s_dw(nW, 0.0f), s_db(s.OC, 0.0f);
        ref::matmul_backward(s_dinp.data(), s_dw.data(), s_db.data(), absv(dout).data(), absv(inp).data(),
                             absv(w).data(), s.N, s.C, s.OC);
        const double S_dinp = max_abs(s_dinp) * (dgelu ? 1.13 : 1.0);  // max |gelu'| ≈ 1.13
        const double S_dw = max_abs(s_dw) + max_abs(dw0), S_db = max_abs(s_db) + max_abs(db0);

        DeviceArray<T> d_inp(inp), d_w(w), d_dout(dout), d_pre(pre), d_dinp(nIn), d_dw(dw0), d_db(db0);
        DeviceArray<float> scratch(kern::matmul_backward_scratch_floats(s.N, s.OC));
        const int declined = kern::matmul_vendor_declines();
        kern::matmul_backward<T>(d_dinp.ptr, d_dw.ptr, d_db.ptr, d_dout.ptr, d_inp.ptr, d_w.ptr,
                                 dgelu ? d_pre.ptr : nullptr, variant == 1 ? nullptr : scratch.ptr, s.N, s.C, s.OC, 0, be);
        CUDA_CHECK(cudaDeviceSynchronize());
        note_fallback(be, declined);
        compare(dgelu ? "dinp (fused dGELU)" : "dinp", d_dinp.download(), r_dinp, tolerance<T>(S_dinp));
        compare("dweight (+=)", d_dw.download(), r_dw, tolerance<T>(S_dw));
        compare("dbias (+=)", d_db.download(), r_db, tolerance<T>(S_db));
      }
    }
  }
}

// dbias must be bit-identical run to run (no atomics): run twice from the same start and compare bytes.
TYPED_TEST(MatmulTest, DbiasDeterministic) {
  using T = TypeParam;
  const int N = 1100, C = 4, OC = 70;
  const auto inp = random_vec((size_t)N * C, 31), w = random_vec((size_t)OC * C, 32), dout = random_vec((size_t)N * OC, 33);
  const auto db0 = random_vec(OC, 34);
  std::vector<std::vector<T>> results;
  for (int rep = 0; rep < 2; rep++) {
    DeviceArray<T> d_inp(inp), d_w(w), d_dout(dout), d_dw((size_t)OC * C), d_db(db0);
    DeviceArray<float> scratch(kern::matmul_backward_scratch_floats(N, OC));
    CUDA_CHECK(cudaMemset(d_dw.ptr, 0, d_dw.n * sizeof(T)));
    kern::matmul_backward<T>(nullptr, d_dw.ptr, d_db.ptr, d_dout.ptr, d_inp.ptr, d_w.ptr, nullptr, scratch.ptr, N, C,
                             OC, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    results.push_back(d_db.download_raw());
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  EXPECT_EQ(0, std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(T)));
}

}  // namespace
