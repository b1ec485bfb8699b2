// test_classifier.cu — kernels/classifier.cuh against ref::softmax_crossentropy_forward/backward.
//
// Checked: per-row losses, dlogits written in place over the logits (every column, padding included), the
// device-counted number of valid targets and the mean loss, for vocabularies smaller than the block (V=37,
// V=256) and GPT-2's (V=50257, Vp=50304), several block sizes, rows with the ignore index -100, and the
// "no dlogits" mode (logits left untouched); both the 16-byte-chunk path (Vp a multiple of 8 bf16 / 4 fp32, chunks
// straddling V) and the one-column path (Vp=39). The chunked kernel sums exp in another order than the reference
// (per chunk, then per thread, then a tree): the same γ_V-relative rounding of a sum of positive terms, inside the
// bounds below.
// Tolerance (kernel_test_util.h): losses: atol = rtol-scale × (max|logit| + log V), the size of the terms
// x_target, max and log Σexp that the loss is made of. dlogits = (p − onehot)·dloss: atol = rtol-scale × dloss
// (the size of the terms p·dloss and dloss that cancel at the target column).
#include "kernels/classifier.cuh"
#include "tests/kernels/kernel_test_util.h"
#include "cpu/ops.h"

#include <cmath>
#include <cstring>
#include <vector>

namespace {

using ktest::compare;
using ktest::DeviceArray;
using ktest::DeviceInts;
using ktest::max_abs;
using ktest::random_vec;
using ktest::round_through;
using ktest::tolerance;

struct ClsCase {
  int N, V, Vp, block;
  int ignore_every;  // every k-th row gets target -100 (0: none)
  const char* name;
};
const std::vector<ClsCase>& cases() {
  static const std::vector<ClsCase> c = {
      {32, 256, 256, 256, 5, "tiny N32 V256 block256"},
      {32, 256, 256, 1024, 7, "tiny N32 V256 block1024 (V < block)"},
      {7, 37, 40, 64, 3, "odd N7 V37 Vp40 block64"},
      {5, 37, 40, 32, 0, "odd N5 V37 Vp40 block32"},
      {4, 50257, 50304, 256, 4, "gpt2 N4 V50257 Vp50304 block256"},
      {3, 50257, 50304, 1024, 0, "gpt2 N3 V50257 Vp50304 block1024"},
      // 16-byte chunks (8 bf16 / 4 fp32) need Vp % 8 (4) == 0: Vp=39 takes the one-column path
      {3, 37, 39, 64, 2, "odd N3 V37 Vp39 block64 (no 16-byte chunks)"},
      // chunks made only of padding columns (V=40, Vp=64): written as 0 in pass 2, never read in pass 1
      {4, 40, 64, 32, 3, "N4 V40 Vp64 block32 (padding-only chunks)"},
  };
  return c;
}

template <class T> class ClassifierTest : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(ClassifierTest, Types);

TYPED_TEST(ClassifierTest, LossAndDlogits) {
  using T = TypeParam;
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    std::printf("[%s %s]\n", ktest::type_name<T>(), c.name);
    const size_t n = (size_t)c.N * c.Vp;
    const auto logits = round_through<T>(random_vec(n, 41, -4.0f, 4.0f));  // padding columns random too
    auto targets = ktest::random_tokens(c.N, c.V, 42);
    int valid = 0;
    for (int i = 0; i < c.N; i++) {
      if (c.ignore_every && i % c.ignore_every == 1) targets[i] = -100;
      valid += targets[i] != -100;
    }
    ASSERT_GT(valid, 0);

    std::vector<float> r_losses(c.N), r_probs(n), r_dlogits(n, 0.0f);
    const float r_mean = ref::softmax_crossentropy_forward(r_losses.data(), r_probs.data(), logits.data(),
                                                           targets.data(), c.N, c.V, c.Vp);
    const float dloss = 1.0f / (float)valid;
    ref::softmax_crossentropy_backward(r_dlogits.data(), r_probs.data(), targets.data(), c.N, c.V, c.Vp, dloss);

    DeviceArray<T> d_logits(logits);
    DeviceArray<float> d_losses(c.N), d_mean(1);
    DeviceInts d_targets(targets), d_count(std::vector<int>{-1});
    kern::fused_classifier<T>(d_logits.ptr, d_losses.ptr, d_targets.ptr, d_count.ptr, c.N, c.V, c.Vp, 1.0f, true, 0,
                              c.block);
    kern::classifier_mean_loss(d_mean.ptr, d_losses.ptr, d_count.ptr, c.N, 0);
    CUDA_CHECK(cudaDeviceSynchronize());

    int count = -1;
    CUDA_CHECK(cudaMemcpy(&count, d_count.ptr, sizeof(int), cudaMemcpyDeviceToHost));
    EXPECT_EQ(count, valid);
    const double loss_terms = max_abs(logits) + std::log((double)c.V);
    compare("losses", d_losses.download(), r_losses, tolerance<float>(loss_terms));  // fp32 output in both modes
    compare("mean loss", d_mean.download(), {r_mean}, tolerance<float>(loss_terms));
    compare("dlogits (in place)", d_logits.download(), r_dlogits, tolerance<T>(dloss));
  }
}

TYPED_TEST(ClassifierTest, NoDlogitsLeavesLogits) {
  using T = TypeParam;
  const int N = 6, V = 100, Vp = 128;
  const auto logits = round_through<T>(random_vec((size_t)N * Vp, 51, -3.0f, 3.0f));
  auto targets = ktest::random_tokens(N, V, 52);
  targets[2] = -100;
  std::vector<float> r_losses(N), r_probs((size_t)N * Vp);
  ref::softmax_crossentropy_forward(r_losses.data(), r_probs.data(), logits.data(), targets.data(), N, V, Vp);
  DeviceArray<T> d_logits(logits);
  DeviceArray<float> d_losses(N);
  DeviceInts d_targets(targets), d_count(std::vector<int>{-1});
  const auto before = d_logits.download_raw();
  kern::fused_classifier<T>(d_logits.ptr, d_losses.ptr, d_targets.ptr, d_count.ptr, N, V, Vp, 1.0f, false, 0);
  CUDA_CHECK(cudaDeviceSynchronize());
  compare("losses", d_losses.download(), r_losses, tolerance<float>(3.0 + std::log((double)V)));
  const auto after = d_logits.download_raw();
  EXPECT_EQ(0, std::memcmp(before.data(), after.data(), before.size() * sizeof(T)));
}

TYPED_TEST(ClassifierTest, AllIgnored) {
  using T = TypeParam;
  const int N = 4, V = 50, Vp = 64;
  const auto logits = random_vec((size_t)N * Vp, 61);
  const std::vector<int> targets(N, -100);
  DeviceArray<T> d_logits(logits);
  DeviceArray<float> d_losses(N), d_mean(1);
  DeviceInts d_targets(targets), d_count(std::vector<int>{-1});
  kern::fused_classifier<T>(d_logits.ptr, d_losses.ptr, d_targets.ptr, d_count.ptr, N, V, Vp, 1.0f, true, 0);
  kern::classifier_mean_loss(d_mean.ptr, d_losses.ptr, d_count.ptr, N, 0);
  CUDA_CHECK(cudaDeviceSynchronize());
  for (float x : d_logits.download()) ASSERT_EQ(x, 0.0f);
  for (float x : d_losses.download()) ASSERT_EQ(x, 0.0f);
  EXPECT_EQ(d_mean.download()[0], 0.0f);
}

TEST(ClassifierLauncher, RejectsBadArguments) {
  DeviceArray<float> logits(8), losses(1);
  DeviceInts targets(std::vector<int>{0}), count(std::vector<int>{0});
  EXPECT_THROW(kern::fused_classifier<float>(logits.ptr, losses.ptr, targets.ptr, count.ptr, 1, 8, 8, 1.0f, true, 0, 100),
               llm::Error);
  EXPECT_THROW(kern::fused_classifier<float>(logits.ptr, losses.ptr, targets.ptr, count.ptr, 1, 9, 8, 1.0f, true, 0),
               llm::Error);
}

}  // namespace
