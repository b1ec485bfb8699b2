// test_global_norm.cu — deterministic global norm and clipping vs ref::global_grad_norm / ref::clip_gradients.
#include "tests/kernels/kernel_test_util.h"
#include "kernels/global_norm.cuh"
#include "cpu/ops.h"

using namespace ktest;

template <class T>
void check_norm_and_clip(size_t n, float max_norm, const std::string& tag) {
  SCOPED_TRACE(tag);
  const auto g = round_through<T>(random_vec(n, 101));
  const double norm_ref = ref::global_grad_norm(g.data(), n);
  DeviceArray<T> d_g(g);
  DeviceArray<float> d_norm(1), d_scratch(kern::global_norm_scratch_floats());
  kern::global_norm(d_norm.ptr, d_scratch.ptr, d_g.ptr, n, 0);
  const float norm = d_norm.download()[0];
  // a sum of n positive squares in fp32 (no cancellation: relative error ≤ (number of additions along the
  // longest path)·u, u = 2^-24): per-thread runs of ≤ 16 (kNormMinPerThread while n ≤ 4M), an 8-level tree per
  // block, ≤ 10 levels over the ≤ 1024 block sums, + 1 per square: ≤ 35u; sqrt halves it, + its own and the
  // double reference's rounding: ≤ 20u = 1.2e-6 < 1e-5 relative in BOTH precisions (the norm itself is fp32)
  compare(tag + " global_norm", {norm}, {(float)norm_ref}, tolerance<float>(0.0));

  // deterministic: the same gradients give the same bits
  d_norm.poison();
  d_scratch.poison();
  kern::global_norm(d_norm.ptr, d_scratch.ptr, d_g.ptr, n, 0);
  const float again = d_norm.download()[0];
  EXPECT_EQ(0, std::memcmp(&norm, &again, sizeof(float))) << "global_norm is not deterministic";

  std::vector<float> clipped_ref = g;
  ref::clip_gradients(clipped_ref.data(), n, max_norm, norm_ref);
  kern::clip_gradients(d_g.ptr, n, max_norm, d_norm.ptr, 0);
  const auto clipped = d_g.download();
  // one multiply by max_norm/norm (the fp32 norm is ≤ 20u off the double one, see above, + 2 roundings): fp32 ≤ 23u
  // < rtol 1e-5; bf16: one rounding of the result, ≤ 2^-8 < rtol 2^-7
  compare(tag + " clip_gradients", clipped, clipped_ref, tolerance<T>(0.0));
  if (!(norm_ref > max_norm)) {
    EXPECT_EQ(0, std::memcmp(clipped.data(), g.data(), n * sizeof(float))) << "below max_norm but changed";
  }
}

template <class T>
void check_all() {
  const std::string ty = type_name<T>();
  for (size_t n : {1, 37, 1000, 4099, 300007}) {
    const double typical = std::sqrt(n / 3.0);  // |g| ~ U(-1,1): E[g²] = 1/3
    check_norm_and_clip<T>(n, (float)(typical / 2), ty + " n=" + std::to_string(n) + " clipped");
    check_norm_and_clip<T>(n, (float)(typical * 2 + 1), ty + " n=" + std::to_string(n) + " not clipped");
  }
}

TEST(KernelGlobalNorm, Fp32) { check_all<float>(); }
TEST(KernelGlobalNorm, Bf16) { check_all<__nv_bfloat16>(); }

// A closed-form case: 3-4-5 triangle and 12 ones.
TEST(KernelGlobalNorm, ClosedForm) {
  std::vector<float> g(14, 1.0f);
  g[0] = 3.0f;
  g[1] = 4.0f;
  g.resize(14);
  // 9 + 16 + 12·1 = 37
  DeviceArray<float> d_g(g), d_norm(1), d_scratch(kern::global_norm_scratch_floats());
  kern::global_norm(d_norm.ptr, d_scratch.ptr, d_g.ptr, g.size(), 0);
  EXPECT_FLOAT_EQ(d_norm.download()[0], std::sqrt(37.0f));
}
