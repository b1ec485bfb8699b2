// test_model_parity.cpp — the CPU reference against PyTorch (fixtures from scripts/gen_reference.py):
// logits, loss, every parameter gradient, dropout-on forward/backward with our Philox masks, 10 AdamW steps.
// Tolerance: 1e-5 relative, per tensor measured as max|ours − torch| / max|torch| (printed for every tensor).
// Why 1e-5: both sides are fp32 and differ only in summation order (our packed GEMM vs MKL/oneDNN blocking, vector
// widths). One reduction of K terms in two orders differs by ≤ 2γ_K·Σ|terms| (γ_K = K·u/(1 − K·u), u = 2^-24);
// here K ≤ 256 (V = 253, 4C = 192, C = 48, B·T = 32), 2γ_256 = 3.1e-5 per op. The errors of the ~30 ops along a
// path (L = 2 layers, forward and backward) are independent roundings, so they add in quadrature, ≈ √(30·256)·u =
// 5e-6 of the terms' scale; 1e-5 (= 0.33·2γ_256) is 2× that and 17× the worst measured (5.7e-7 on Zen 4, wte grad
// of book_untied). A wrong op (mask, scale, missing term) moves a tensor by ≥ 1e-3 (the dropout test below checks
// that the bound does see such a change). Losses and the grad norm (sums of positive terms, well conditioned):
// same 1e-5 relative. LR: float vs Python double, one rounding (≤ u) of float inputs: 1e-6 relative ≈ 16u.
// Parameters after 10 AdamW steps, max|Δ| / max|p| ≤ 1e-4: AdamW's step m̂/(√v̂+ε) is scale-free, so a relative
// gradient difference ρ moves an element by ≤ 2ρ·lr per step; with ρ ≤ 64·γ_256 (elements up to 64× worse
// conditioned than their tensor's largest) and Σlr ≤ 0.021 over the 10 steps: 2·64·γ_256·0.021 = 4e-5 of max|p| ≈ 1
// (the LayerNorm weights). Measured 6.5e-6 (hf_tied), 2.2e-7 (book_untied).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cpu/gpt2_model.h"
#include "cpu/optimizer.h"
#include "test_model_fixture.h"

namespace {

const char* kTensorNames[llm::kNumParamTensors] = {"wte",  "wpe",   "ln1w",    "ln1b", "qkvw", "qkvb",
                                                   "attprojw", "attprojb", "ln2w", "ln2b", "fcw",  "fcb",
                                                   "fcprojw", "fcprojb", "lnfw", "lnfb", "lm_head"};

llm::GPT2Config config_from(const llmtest::Fixture& fx) {
  const auto c = fx.i32("config");  // maxT V Vp L NH C qkv_bias tied
  llm::GPT2Config cfg;
  cfg.max_seq_len = c[0];
  cfg.vocab_size = c[1];
  cfg.padded_vocab_size = c[2];
  cfg.num_layers = c[3];
  cfg.num_heads = c[4];
  cfg.channels = c[5];
  cfg.qkv_bias = c[6] != 0;
  cfg.tied_head = c[7] != 0;
  cfg.dropout = 0.0f;
  return cfg;
}

// max|a − b| / max|b| over n elements (b = PyTorch). 0/0 counts as 0.
double rel_max_err(const float* a, const float* b, size_t n, double* max_abs = nullptr) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < n; i++) {
    err = std::max(err, (double)std::fabs(a[i] - b[i]));
    ref = std::max(ref, (double)std::fabs(b[i]));
  }
  if (max_abs) *max_abs = err;
  return ref > 0 ? err / ref : err;
}

// Compares logits (ours B,T,Vp vs torch B,T,V).
double logits_err(const llm::GPT2Model& m, const std::vector<float>& want, int BT) {
  const int V = m.config().vocab_size, Vp = m.config().padded_vocab_size;
  std::vector<float> got((size_t)BT * V);
  for (int i = 0; i < BT; i++) std::copy_n(m.logits() + (size_t)i * Vp, V, got.data() + (size_t)i * V);
  return rel_max_err(got.data(), want.data(), got.size());
}

void expect_grads(const llm::GPT2Model& m, const std::vector<float>& want, const std::string& tag) {
  ASSERT_EQ(want.size(), m.num_params());
  for (int k = 0; k < llm::kNumParamTensors; k++) {
    const auto t = (llm::ParamTensor)k;
    const size_t n = m.param_size(t), off = m.param_offset(t);
    if (n == 0) continue;
    double abs_err = 0;
    const double rel = rel_max_err(m.grads() + off, want.data() + off, n, &abs_err);
    std::printf("  %-12s grad %-9s max rel err %.3e (max abs %.3e)\n", tag.c_str(), kTensorNames[k], rel, abs_err);
    ::testing::Test::RecordProperty(tag + "_grad_" + kTensorNames[k] + "_rel_err", std::to_string(rel));
    EXPECT_LT(rel, 1e-5) << tag << " gradient of " << kTensorNames[k];
  }
}

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, LogitsLossAndEveryGradient) {
  llmtest::Fixture fx(llmtest::fixture_path(GetParam() + ".bin"));
  const auto cfg = config_from(fx);
  llm::GPT2Model m(cfg);
  const auto params = fx.f32("params");
  ASSERT_EQ(params.size(), m.num_params());
  std::copy(params.begin(), params.end(), m.params());
  const auto inp = fx.i32("inputs"), tgt = fx.i32("targets");
  const int B = (int)fx.at("inputs").dims[0], T = (int)fx.at("inputs").dims[1];
  m.zero_grad();
  const float loss = m.forward(inp.data(), tgt.data(), B, T);
  m.backward();
  const float want_loss = fx.f32("loss")[0];
  const double lerr = logits_err(m, fx.f32("logits"), B * T);
  std::printf("  %-12s logits max rel err %.3e, loss %.7f vs torch %.7f\n", GetParam().c_str(), lerr, loss, want_loss);
  RecordProperty("logits_rel_err", std::to_string(lerr));
  EXPECT_LT(lerr, 1e-5);
  EXPECT_LT(std::fabs(loss - want_loss) / std::fabs(want_loss), 1e-5);
  expect_grads(m, fx.f32("grads"), GetParam());
}

TEST_P(Parity, DropoutForwardBackwardWithPhiloxMasks) {
  llmtest::Fixture fx(llmtest::fixture_path(GetParam() + ".bin"));
  auto cfg = config_from(fx);
  cfg.dropout = fx.f32("dropout_p")[0];
  llm::GPT2Model m(cfg);
  const auto params = fx.f32("params");
  std::copy(params.begin(), params.end(), m.params());
  const auto inp = fx.i32("inputs"), tgt = fx.i32("targets");
  const int B = (int)fx.at("inputs").dims[0], T = (int)fx.at("inputs").dims[1];
  const uint64_t seed = (uint64_t)fx.i64("dropout_seed")[0];
  EXPECT_EQ(seed, llm::dropout_step_seed(1234, 5, 1));  // the script derives it the same way
  m.zero_grad();
  const float loss = m.forward(inp.data(), tgt.data(), B, T, {true, seed});
  m.backward();
  const float want_loss = fx.f32("dropout_loss")[0];
  const double lerr = logits_err(m, fx.f32("dropout_logits"), B * T);
  std::printf("  %-12s dropout logits max rel err %.3e, loss %.7f vs torch %.7f\n", GetParam().c_str(), lerr, loss,
              want_loss);
  EXPECT_LT(lerr, 1e-5);
  EXPECT_LT(std::fabs(loss - want_loss) / std::fabs(want_loss), 1e-5);
  expect_grads(m, fx.f32("dropout_grads"), GetParam() + "+drop");
  // the masks matter: without dropout the logits differ clearly
  m.forward(inp.data(), tgt.data(), B, T, {false, seed});
  EXPECT_GT(logits_err(m, fx.f32("dropout_logits"), B * T), 1e-3);
}

TEST_P(Parity, TenAdamWStepsWithClippingAndWarmupCosine) {
  llmtest::Fixture fx(llmtest::fixture_path(GetParam() + ".bin"));
  const auto cfg = config_from(fx);
  llm::GPT2Model m(cfg);
  const auto params = fx.f32("params");
  std::copy(params.begin(), params.end(), m.params());
  const auto inp = fx.i32("inputs"), tgt = fx.i32("targets");
  const int B = (int)fx.at("inputs").dims[0], T = (int)fx.at("inputs").dims[1];
  const auto hp = fx.f64("train_hparams");  // peak initial min warmup total beta1 beta2 eps wd decay_all
  llm::LRSchedule sched;
  sched.kind = llm::ScheduleKind::kCosine;
  sched.warmup_style = llm::WarmupStyle::kBook;
  sched.max_lr = (float)hp[0];
  sched.initial_lr = (float)hp[1];
  sched.min_lr = (float)hp[2];
  sched.warmup_steps = (int)hp[3];
  sched.total_steps = (int)hp[4];
  llm::AdamWConfig ac;
  ac.beta1 = (float)hp[5];
  ac.beta2 = (float)hp[6];
  ac.eps = (float)hp[7];
  ac.weight_decay = (float)hp[8];
  ac.decay = hp[9] != 0 ? llm::DecayMode::kAll : llm::DecayMode::kMatrices;
  llm::AdamW opt(cfg, ac);
  const auto want_losses = fx.f32("train_losses");
  const auto want_lrs = fx.f64("train_lrs"), want_norms = fx.f64("train_norms");
  ASSERT_EQ(want_losses.size(), 10u);
  for (int step = 0; step < 10; step++) {
    const float lr = sched(step);
    m.zero_grad();
    const float loss = m.forward(inp.data(), tgt.data(), B, T);
    m.backward();
    const double norm = llm::clip_grad_norm(m, 1.0f, llm::ClipStyle::kTorch);
    opt.step(m, lr, step + 1);
    std::printf("  %-12s step %d loss %.7f (torch %.7f) lr %.6g (torch %.6g) norm %.6f (torch %.6f)\n",
                GetParam().c_str(), step, loss, want_losses[step], lr, want_lrs[step], norm, want_norms[step]);
    EXPECT_LT(std::fabs(loss - want_losses[step]) / want_losses[step], 1e-5) << "step " << step;
    EXPECT_NEAR(lr, want_lrs[step], 1e-6 * want_lrs[step]) << "step " << step;
    EXPECT_LT(std::fabs(norm - want_norms[step]) / want_norms[step], 1e-5) << "step " << step;
  }
  const auto want_final = fx.f32("final_params");
  const double perr = rel_max_err(m.params(), want_final.data(), m.num_params());
  std::printf("  %-12s parameters after 10 steps: max rel err %.3e\n", GetParam().c_str(), perr);
  EXPECT_LT(perr, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Torch, Parity, ::testing::Values("hf_tied", "book_untied"));

}  // namespace
