// test_model_smoke.cpp — model-level checks that need no fixtures: initial loss, finite differences,
// determinism, gradient accumulation, dropout reproducibility.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "cpu/gpt2_model.h"
#include "cpu/optimizer.h"
#include "host/error.h"

#include <omp.h>

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

TEST(ModelSmoke, InitStatistics) {
  auto cfg = tiny(true);
  cfg.channels = 64;
  cfg.num_heads = 4;
  llm::GPT2Model m(cfg);
  auto stats = [&](llm::ParamTensor t, size_t n_used) {
    const float* p = m.param(t);
    double s = 0, s2 = 0, mx = 0;
    for (size_t i = 0; i < n_used; i++) { s += p[i]; s2 += (double)p[i] * p[i]; mx = std::max(mx, (double)std::fabs(p[i])); }
    return std::array<double, 3>{s / n_used, std::sqrt(s2 / n_used), mx};
  };
  const size_t VC = (size_t)cfg.vocab_size * cfg.channels;
  m.init_gpt2(1);
  EXPECT_NEAR(stats(llm::kWte, VC)[1], 0.02, 0.002);
  EXPECT_NEAR(stats(llm::kFcprojw, m.param_size(llm::kFcprojw))[1], 0.02 / std::sqrt(4.0), 0.002);
  EXPECT_EQ(stats(llm::kLn1w, m.param_size(llm::kLn1w))[0], 1.0);
  EXPECT_EQ(m.param(llm::kWte)[VC], 0.0f);  // padded rows stay zero
  m.init_book(1);
  EXPECT_NEAR(stats(llm::kWte, VC)[1], 1.0, 0.05);
  const auto fc = stats(llm::kFcw, m.param_size(llm::kFcw));
  EXPECT_LE(fc[2], 1.0 / 8.0);                      // U(-1/sqrt(64), 1/sqrt(64))
  EXPECT_NEAR(fc[1], 1.0 / 8.0 / std::sqrt(3.0), 0.005);  // sd of a uniform
  EXPECT_EQ(m.param(llm::kLmHead)[VC], 0.0f);
  llm::GPT2Model m2(cfg);
  m2.init_book(1);
  EXPECT_TRUE(std::equal(m.params(), m.params() + m.num_params(), m2.params()));  // seeded: reproducible
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

// A config big enough that the GEMM and the element-wise ops really run multi-threaded.
llm::GPT2Config medium_tiny() {
  llm::GPT2Config c = tiny(false);
  c.vocab_size = 1100;
  c.padded_vocab_size = 1152;
  c.channels = 64;
  c.num_heads = 4;
  c.max_seq_len = 32;
  c.dropout = 0.1f;
  return c;
}

// Three training steps (dropout on, AdamW, clipping); returns losses and final parameters.
std::vector<float> train3(int threads, std::vector<float>* params) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  auto cfg = medium_tiny();
  llm::GPT2Model m(cfg);
  m.init_gpt2(5);
  llm::AdamW opt(cfg, llm::AdamWConfig{0.9f, 0.95f, 1e-8f, 0.1f, llm::DecayMode::kMatrices});
  std::vector<int> inp, tgt;
  batch(4, 32, cfg.vocab_size, inp, tgt);
  std::vector<float> losses;
  for (int step = 0; step < 3; step++) {
    m.zero_grad();
    losses.push_back(m.forward(inp.data(), tgt.data(), 4, 32, {true, llm::dropout_step_seed(17, step, 0)}));
    m.backward();
    llm::clip_grad_norm(m, 1.0f);
    opt.step(m, 1e-3f, step + 1);
  }
  params->assign(m.params(), m.params() + m.num_params());
  omp_set_num_threads(saved);
  return losses;
}

TEST(ModelDeterminism, BitIdenticalRunsAndThreadCounts) {
  std::vector<float> p1, p2, p3;
  const auto l1 = train3(2, &p1), l2 = train3(2, &p2), l3 = train3(1, &p3);
  EXPECT_EQ(l1, l2);
  EXPECT_TRUE(p1 == p2) << "two 2-thread runs differ";
  // every reduction has a fixed order, so even the thread count does not change a bit
  EXPECT_EQ(l1, l3);
  EXPECT_TRUE(p1 == p3) << "1-thread and 2-thread runs differ";
  EXPECT_LT(l1[2], l1[0]);  // and it trains
}

TEST(ModelGradAccumulation, TwoHalfBatchesEqualOneBatch) {
  auto cfg = tiny(true);
  llm::GPT2Model m(cfg);
  m.init_gpt2(3);
  std::vector<int> inp, tgt;
  batch(2, 8, cfg.vocab_size, inp, tgt);
  for (auto& t : tgt) t = t < 0 ? 5 : t;  // equal valid counts per half: mean of means == overall mean
  m.zero_grad();
  const float full = m.forward(inp.data(), tgt.data(), 2, 8);
  m.backward();
  std::vector<float> g_full(m.grads(), m.grads() + m.num_params());
  m.zero_grad();
  const float l0 = m.forward(inp.data(), tgt.data(), 1, 8);
  m.backward(0.5f);
  const float l1 = m.forward(inp.data() + 8, tgt.data() + 8, 1, 8);
  m.backward(0.5f);
  EXPECT_NEAR((l0 + l1) / 2, full, 1e-6);
  double err = 0, ref = 0;
  for (size_t i = 0; i < g_full.size(); i++) {
    err = std::max(err, (double)std::fabs(m.grads()[i] - g_full[i]));
    ref = std::max(ref, (double)std::fabs(g_full[i]));
  }
  EXPECT_LT(err / ref, 1e-5);
}

// zero_grad() is lazy: the next backward overwrites the matmul weight gradients and zeroes the rest. Gradients
// must equal a fresh zero-then-accumulate backward (tied and untied head), zero_grad() must read as zeros, and
// a backward without zero_grad must still accumulate.
TEST(ModelGradAccumulation, LazyZeroGradEqualsExplicitZeroing) {
  for (bool book : {false, true}) {
    auto cfg = tiny(book);
    llm::GPT2Model m(cfg);
    m.init_gpt2(5);
    std::vector<int> inp, tgt;
    batch(2, 8, cfg.vocab_size, inp, tgt);
    m.zero_grad();  // first call allocates zeroed gradients: the += path
    m.forward(inp.data(), tgt.data(), 2, 8);
    m.backward();
    const std::vector<float> g1(m.grads(), m.grads() + m.num_params());
    m.zero_grad();  // now only marked: reading must still give zeros
    for (size_t i = 0; i < m.num_params(); i++) ASSERT_EQ(m.grads()[i], 0.0f) << "element " << i;
    m.forward(inp.data(), tgt.data(), 2, 8);
    m.backward();
    m.zero_grad();  // marked, then overwritten by backward without any accessor in between
    m.forward(inp.data(), tgt.data(), 2, 8);
    m.backward();
    const std::vector<float> g2(m.grads(), m.grads() + m.num_params());
    EXPECT_TRUE(g1 == g2) << "book=" << book;
    m.forward(inp.data(), tgt.data(), 2, 8);
    m.backward();  // no zero_grad: accumulates
    double err = 0;
    for (size_t i = 0; i < g1.size(); i++) err = std::max(err, (double)std::fabs(m.grads()[i] - 2 * g1[i]));
    EXPECT_LT(err, 1e-6) << "book=" << book;
    size_t nonzero = 0;
    for (float g : g1) nonzero += g != 0.0f;
    EXPECT_GT(nonzero, g1.size() / 2);
  }
}

TEST(ModelOptimizer, FusedClipScaleEqualsClipThenStep) {
  for (auto style : {llm::ClipStyle::kTorch, llm::ClipStyle::kLlmc}) {
    auto cfg = tiny(false);
    llm::GPT2Model a(cfg), b(cfg);
    a.init_gpt2(9);
    b.init_gpt2(9);
    llm::AdamW oa(cfg, {}), ob(cfg, {});
    std::vector<int> inp, tgt;
    batch(2, 8, cfg.vocab_size, inp, tgt);
    for (int step = 0; step < 3; step++) {
      a.zero_grad();
      a.forward(inp.data(), tgt.data(), 2, 8);
      a.backward();
      const double na = llm::clip_grad_norm(a, 0.5f, style);
      oa.step(a, 1e-2f, step + 1);
      b.zero_grad();
      b.forward(inp.data(), tgt.data(), 2, 8);
      b.backward();
      const double nb = llm::grad_norm(b);
      EXPECT_LT(llm::clip_scale(nb, 0.5f, style), 1.0f);  // clipping is active in this test
      ob.step(b, 1e-2f, step + 1, llm::clip_scale(nb, 0.5f, style));
      EXPECT_EQ(na, nb);
    }
    EXPECT_TRUE(std::equal(a.params(), a.params() + a.num_params(), b.params()));
    EXPECT_TRUE(oa.m() == ob.m() && oa.v() == ob.v());
  }
  EXPECT_EQ(llm::clip_scale(0.5, 1.0f), 1.0f);
  EXPECT_FLOAT_EQ(llm::clip_scale(5.0, 1.0f, llm::ClipStyle::kLlmc), 0.2f);
}

TEST(ModelErrors, BadInputsThrowLlmError) {
  auto cfg = tiny(false);
  llm::GPT2Model m(cfg);
  std::vector<int> inp(8, 1), tgt(8, 2);
  inp[3] = cfg.vocab_size;  // out of range token
  EXPECT_THROW(m.forward(inp.data(), tgt.data(), 1, 8), llm::Error);
  inp[3] = -1;
  EXPECT_THROW(m.forward(inp.data(), tgt.data(), 1, 8), llm::Error);
  inp[3] = 0;
  tgt[2] = cfg.vocab_size;
  EXPECT_THROW(m.forward(inp.data(), tgt.data(), 1, 8), llm::Error);
  std::vector<int> long_inp(cfg.max_seq_len + 1, 0);
  EXPECT_THROW(m.forward(long_inp.data(), nullptr, 1, cfg.max_seq_len + 1), llm::Error);
  EXPECT_EQ(m.forward(inp.data(), nullptr, 1, 8), -1.0f);  // inference without targets
  EXPECT_THROW(m.backward(), llm::Error);                    // ... cannot be back-propagated
  auto bad = cfg;
  bad.num_heads = 3;  // 16 % 3 != 0
  EXPECT_THROW(llm::GPT2Model{bad}, llm::Error);
  bad = cfg;
  bad.padded_vocab_size = cfg.vocab_size - 1;
  EXPECT_THROW(llm::GPT2Model{bad}, llm::Error);
}

}  // namespace
