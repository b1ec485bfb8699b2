// test_attention_decode.cu — kernels/attention_decode.cuh (KV-cache append + single-query attention) against the
// CPU reference ref::attention_forward.
//
// Recipe: random qkv rows (T, 3C) for one sequence; the reference is row T-1 of ref::attention_forward over all T
// rows (causal, so the last row sees positions 0..T-1). The kernels first append the k/v of rows 0..T-1 into a
// cache of maxT > T positions (two appends: a "prefill" of T-1 rows and a 1-row "step", as generation does),
// then attend with the q of row T-1 over len = T cache rows. The cache is poisoned (NaN) beforehand, so reading a
// row >= len or a row the append forgot gives NaN and fails; the cache itself is compared to the k/v rows exactly.
// Lengths: 1 (one key), 5, 64/65 around the 64-thread split, 300 (each thread merges several keys); head sizes
// 8, 16, 64 (GPT-2) and 128 (32 threads).
// Tolerance (kernel_test_util.h): the output is a convex combination of v rows, so atol = rtol-scale × max|v|
// (fp32: 1e-5, order of summation only; bf16: the one rounding of the stored output, 2·2^-8). Inputs are rounded
// through the storage type first, so the reference sees exactly the kernel's inputs.
#include "kernels/attention_decode.cuh"
#include "tests/kernels/kernel_test_util.h"
#include "cpu/ops.h"

#include <cmath>
#include <vector>

namespace {

using ktest::compare;
using ktest::DeviceArray;
using ktest::max_abs;
using ktest::random_vec;
using ktest::round_through;
using ktest::tolerance;

struct DecShape {
  int T, C, NH;
};

template <class T> class AttentionDecodeTest : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(AttentionDecodeTest, Types);

TYPED_TEST(AttentionDecodeTest, LastRowMatchesReference) {
  using T = TypeParam;
  const DecShape shapes[] = {{1, 32, 4}, {5, 48, 3}, {64, 128, 2}, {65, 64, 8}, {300, 128, 2}, {70, 256, 2}};
  for (const DecShape& s : shapes) {
    const int Tn = s.T, C = s.C, NH = s.NH, maxT = Tn + 7;
    SCOPED_TRACE("T=" + std::to_string(Tn) + " C=" + std::to_string(C) + " NH=" + std::to_string(NH));
    std::printf("[%s T=%d C=%d NH=%d hs=%d]\n", ktest::type_name<T>(), Tn, C, NH, C / NH);
    const auto qkv = round_through<T>(random_vec((size_t)Tn * 3 * C, 1000 + Tn, -2.0f, 2.0f));
    std::vector<float> r_out((size_t)Tn * C), r_att((size_t)NH * Tn * Tn);
    llm::DropoutSpec nodrop;
    ref::attention_forward(r_out.data(), r_att.data(), qkv.data(), 1, Tn, C, NH, nodrop);
    const std::vector<float> want(r_out.end() - C, r_out.end());

    DeviceArray<T> d_qkv(qkv), d_k((size_t)maxT * C), d_v((size_t)maxT * C), d_out(C);  // all poisoned first
    if (Tn > 1) kern::kv_cache_append<T>(d_k.ptr, d_v.ptr, d_qkv.ptr, Tn - 1, 0, maxT, C, 0);  // "prefill"
    kern::kv_cache_append<T>(d_k.ptr, d_v.ptr, d_qkv.ptr + (size_t)(Tn - 1) * 3 * C, 1, Tn - 1, maxT, C, 0);  // "step"
    kern::attention_decode<T>(d_out.ptr, d_qkv.ptr + (size_t)(Tn - 1) * 3 * C, d_k.ptr, d_v.ptr, Tn, C, NH, 0);
    CUDA_CHECK(cudaDeviceSynchronize());

    // the cache rows 0..T-1 are exactly the k and v thirds of the qkv rows (a copy, no rounding)
    const auto kc = d_k.download(), vc = d_v.download();
    for (int t = 0; t < Tn; t++)
      for (int c = 0; c < C; c++) {
        ASSERT_EQ(kc[(size_t)t * C + c], qkv[(size_t)t * 3 * C + C + c]) << "k row " << t;
        ASSERT_EQ(vc[(size_t)t * C + c], qkv[(size_t)t * 3 * C + 2 * C + c]) << "v row " << t;
      }
    std::vector<float> v_part;
    for (int t = 0; t < Tn; t++) v_part.insert(v_part.end(), qkv.begin() + (size_t)t * 3 * C + 2 * C, qkv.begin() + (size_t)(t + 1) * 3 * C);
    compare("out", d_out.download(), want, tolerance<T>(max_abs(v_part)));
  }
}

// Same inputs twice -> identical bytes (the merge runs in a fixed order).
TEST(AttentionDecodeKernel, Deterministic) {
  const int Tn = 200, C = 64, NH = 1;
  const auto qkv = random_vec((size_t)Tn * 3 * C, 7);
  std::vector<std::vector<float>> res;
  for (int rep = 0; rep < 2; rep++) {
    DeviceArray<float> d_qkv(qkv), d_k((size_t)Tn * C), d_v((size_t)Tn * C), d_out(C);
    kern::kv_cache_append<float>(d_k.ptr, d_v.ptr, d_qkv.ptr, Tn, 0, Tn, C, 0);
    kern::attention_decode<float>(d_out.ptr, d_qkv.ptr + (size_t)(Tn - 1) * 3 * C, d_k.ptr, d_v.ptr, Tn, C, NH, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    res.push_back(d_out.download());
  }
  EXPECT_EQ(res[0], res[1]);
}

TEST(AttentionDecodeKernel, RejectsBadShapes) {
  DeviceArray<float> qkv(3 * 48), k(4 * 48), v(4 * 48), out(48);
  EXPECT_THROW(kern::attention_decode<float>(out.ptr, qkv.ptr, k.ptr, v.ptr, 1, 48, 4, 0), llm::Error);  // hs 12
  EXPECT_THROW(kern::attention_decode<float>(out.ptr, qkv.ptr, k.ptr, v.ptr, 0, 48, 3, 0), llm::Error);  // len 0
  EXPECT_THROW(kern::kv_cache_append<float>(k.ptr, v.ptr, qkv.ptr, 1, 4, 4, 48, 0), llm::Error);         // full
}

}  // namespace
