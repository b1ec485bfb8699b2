// test_model_smoke.cpp — model-level checks that need no fixtures: initial loss, finite differences,
// determinism, gradient accumulation, dropout reproducibility.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
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
  // GPT-2 init (std 0.02) gives logits of O(0.1) and a loss within ~|logit spread| of log V; 0.2 is a sanity window,
  // not a rounding bound (fp32 error here is < 1e-5)
  EXPECT_NEAR(loss, std::log(61.0f), 0.2f);
  // padding columns of probs are zero, real ones sum to 1
  double s = 0;
  for (int v = 0; v < 64; v++) s += m.probs()[v];
  // 61 probabilities, each exp/Σexp with ≤ 61 + 2 fp32 roundings: |Σp − 1| ≤ γ_64 ≈ 3.8e-6 < 1e-5
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
  // sample sd of n normal draws: relative sd 1/sqrt(2n); wte n = 61·64 (0.9%), fcprojw n = 16384 (0.55%): 0.002 is
  // 10% (≥ 10 sd); a fixed seed makes it deterministic anyway. Book init: wte N(0,1) 5% (≥ 4 sd); uniform sd 0.005
  // of 0.072 (fcw n = 16384, relative sd of the sample sd ≈ 0.45%: 15 sd)
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
      // central difference: rounding δ/h where δ = fp32 error of the loss (≈ 4.1, a mean of 16 log-softmaxes over 61
      // logits of C = 16 sums: ~√K·u·|L| ≈ 3e-6 for K ≈ 100) → 1e-3 at h = 3e-3, atol 2e-3; truncation
      // h²·f'''/6 relative, rtol 2e-2. A wrong gradient is O(|num|) off.
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
  // Per-token activations and losses are bit-identical (B only changes the number of GEMM rows, never a row's sum
  // order); the 0.5 and the 1/8 vs 1/16 loss scales are powers of two. Only the 16-token sums re-associate: two
  // orders of an n-term sum differ by ≤ 2γ_n·Σ|terms| (γ_n = n·u/(1 − n·u), u = 2^-24).
  // loss: Σ|terms|/16 = the loss (all terms > 0), + one rounding of (l0 + l1)/2: (2·16 + 1)·u·|loss| = 8e-6 (was 1e-6)
  EXPECT_NEAR((l0 + l1) / 2, full, 33 * std::ldexp(1.0, -24) * std::fabs(full));
  double err = 0, ref = 0;
  for (size_t i = 0; i < g_full.size(); i++) {
    err = std::max(err, (double)std::fabs(m.grads()[i] - g_full[i]));
    ref = std::max(ref, (double)std::fabs(g_full[i]));
  }
  // gradients, max|Δ| / max|g|: 2γ_16 = 1.9e-6 times Σ|terms| / max|g| of the worst element; 1e-5 allows 5×
  std::printf("  loss |Δ| %.3g (bound %.3g), gradients max|Δ|/max|g| %.3g (bound 1e-5)\n", std::fabs((l0 + l1) / 2 - full),
              33 * std::ldexp(1.0, -24) * std::fabs(full), err / ref);
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
    double err = 0, gmax = 0;
    for (size_t i = 0; i < g1.size(); i++) {
      err = std::max(err, (double)std::fabs(m.grads()[i] - 2 * g1[i]));
      gmax = std::max(gmax, (double)std::fabs(g1[i]));
    }
    // The GEMMs add the old value last (blocksum + C = g1 + g1: exact); the element-wise backward ops add their ≤ 16
    // per-token terms onto g1 instead of onto 0: ≤ 2γ_17·(2|g1| + Σ|terms|) (γ_n = n·u/(1 − n·u), u = 2^-24), with
    // Σ|terms| ≤ 8·max|g1| allowed: 20·γ_17·max|g1| = 7.7e-6 here (was 1e-6 absolute). Forgetting to zero or to
    // accumulate is off by max|g1|.
    const double u = std::ldexp(1.0, -24), gamma17 = 17 * u / (1 - 17 * u);
    std::printf("  book=%d accumulate: max|g − 2·g1| %.3g, max|g1| %.3g, bound %.3g\n", (int)book, err, gmax,
                20 * gamma17 * gmax);
    EXPECT_LT(err, 20 * gamma17 * gmax) << "book=" << book;
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
