// test_model_closed_form.cpp — the book's closed-form cases and other hand-computable facts:
// cross-entropy with -100, warmup/cosine LR values, the clipping example, AdamW's first step, Philox
// known-answer vectors (Random123 and our numpy re-implementation), dropout statistics.
// Bounds: every computation here is a handful of fp32 (or double) operations with a fixed order, so each bound is a
// few fp32 ulps of the value (ulp(x) = 2^-23 for x in [1, 2), u = 2^-24 relative per rounding), stated per check;
// the book's figures are printed to 4 decimals (±5e-5).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cpu/ops.h"
#include "cpu/optimizer.h"
#include "host/philox.h"
#include "test_model_fixture.h"

namespace {

// Book ch5 notes: logits [[-1,1],[-0.5,1.5]], targets [0,1] -> 1.1269; add row [-0.5,1.5] with target 1 -> 0.7936;
// the same extra row with target -100 -> 1.1269 again. V = 2, padded to Vp = 4 to exercise the padding.
float book_ce(const std::vector<std::vector<float>>& rows, const std::vector<int>& targets, std::vector<float>* probs_out) {
  const int N = (int)rows.size(), V = 2, Vp = 4;
  std::vector<float> logits((size_t)N * Vp, 123.0f), probs((size_t)N * Vp, -1.0f), losses(N);
  for (int n = 0; n < N; n++)
    for (int v = 0; v < V; v++) logits[(size_t)n * Vp + v] = rows[n][v];
  const float loss = ref::softmax_crossentropy_forward(losses.data(), probs.data(), logits.data(), targets.data(), N, V, Vp);
  if (probs_out) *probs_out = probs;
  return loss;
}

TEST(BookClosedForm, CrossEntropyWithIgnoreIndex) {
  // the book's 4 printed decimals (±5e-5) + fp32 (< 1e-6): 6e-5 (was 1e-4; exact 1.126928, 0.793595)
  EXPECT_NEAR(book_ce({{-1, 1}, {-0.5f, 1.5f}}, {0, 1}, nullptr), 1.1269f, 6e-5f);
  EXPECT_NEAR(book_ce({{-1, 1}, {-0.5f, 1.5f}, {-0.5f, 1.5f}}, {0, 1, 1}, nullptr), 0.7936f, 6e-5f);
  std::vector<float> probs;
  EXPECT_NEAR(book_ce({{-1, 1}, {-0.5f, 1.5f}, {-0.5f, 1.5f}}, {0, 1, -100}, &probs), 1.1269f, 6e-5f);
  // exact values: -log softmax
  const double l0 = std::log(1 + std::exp(2.0)), l1 = std::log(1 + std::exp(-2.0));
  // expf/logf (≤ 2 ulp each), max, 2-term sum, mean: ≤ 8 ulp of 1.13 (ulp 1.2e-7) ≈ 1e-6
  EXPECT_NEAR(book_ce({{-1, 1}, {-0.5f, 1.5f}}, {0, 1}, nullptr), (l0 + l1) / 2, 1e-6);
  // padding columns of probs are zeroed
  EXPECT_EQ(probs[2], 0.0f);
  EXPECT_EQ(probs[3], 0.0f);
  // backward: ignored row gets nothing, others (p - onehot) / num_valid
  std::vector<int> tg = {0, 1, -100};
  std::vector<float> dlogits(12, 0.0f);
  ref::softmax_crossentropy_backward(dlogits.data(), probs.data(), tg.data(), 3, 2, 4, 0.5f);
  // the same two fp32 ops on the same probs, |value| < 0.5 (ulp ≤ 3e-8): 1e-7 ≥ 3 ulp (FMA contraction or not)
  EXPECT_NEAR(dlogits[0], (probs[0] - 1) * 0.5f, 1e-7);
  EXPECT_NEAR(dlogits[5], (probs[5] - 1) * 0.5f, 1e-7);
  for (int i = 8; i < 12; i++) EXPECT_EQ(dlogits[i], 0.0f);
  EXPECT_EQ(dlogits[2], 0.0f);
  // accumulate = false: same values written over whatever the buffer held (padding and ignored rows become 0)
  std::vector<float> written(12, 7.0f);
  ref::softmax_crossentropy_backward(written.data(), probs.data(), tg.data(), 3, 2, 4, 0.5f, false);
  for (int i = 0; i < 12; i++) EXPECT_EQ(written[i], dlogits[i]) << "element " << i;
  // all ignored: loss 0, no NaN
  EXPECT_EQ(book_ce({{-1, 1}}, {-100}, nullptr), 0.0f);
}

// Book appendix D: 135 steps, warmup 27, peak 1e-3, initial 1e-5, min 1e-5.
TEST(BookClosedForm, WarmupCosineSchedule) {
  llm::LRSchedule s;
  s.kind = llm::ScheduleKind::kCosine;
  s.warmup_style = llm::WarmupStyle::kBook;
  s.max_lr = 1e-3f;
  s.initial_lr = 1e-5f;
  s.min_lr = 1e-5f;
  s.warmup_steps = 27;
  s.total_steps = 135;
  EXPECT_FLOAT_EQ(s(0), 1e-5f);                                  // warmup starts at initial_lr
  EXPECT_FLOAT_EQ(s(1), 1e-5f + (1e-3f - 1e-5f) / 27);           // linear increments
  // values ≤ 1e-3 (float ulp ≤ 1.2e-10): float warmup (4 roundings) or double cosine rounded once to float, plus
  // float(1e-3) itself (≤ 6e-11 off): ≤ 4e-10 < 1e-9; near 1e-5 (ulp 9e-13) 1e-10 is > 100 ulp
  EXPECT_NEAR(s(26), 1e-5 + 26 * (1e-3 - 1e-5) / 27, 1e-9);
  EXPECT_FLOAT_EQ(s(27), 1e-3f);                                 // cosine starts at the peak
  EXPECT_NEAR(s(27 + 54), (1e-3 + 1e-5) / 2, 1e-9);              // progress 1/2: midpoint
  EXPECT_NEAR(s(134), 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + std::cos(M_PI * 107.0 / 108.0)), 1e-10);
  EXPECT_NEAR(s(135), 1e-5, 1e-10);                              // and stays at min after the end
  // demo values: initial 1e-4, peak 0.01, min 0.1·initial. s ≈ 8.5e-3: ½ ulp 4.7e-10 + float(0.01)'s 2.2e-10·0.85
  // = 6.6e-10 < 1e-9
  s.max_lr = 0.01f; s.initial_lr = 1e-4f; s.min_lr = 1e-5f;
  EXPECT_NEAR(s(27 + 27), 1e-5 + (0.01 - 1e-5) * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-9);
}

TEST(Schedules, ConstantLinearAndLlmcWarmup) {
  llm::LRSchedule s;
  s.max_lr = 6e-4f; s.min_lr = 6e-5f; s.warmup_steps = 10; s.total_steps = 110;
  s.warmup_style = llm::WarmupStyle::kLlmc;
  s.kind = llm::ScheduleKind::kConstant;
  EXPECT_FLOAT_EQ(s(0), 6e-4f / 10);  // llm.c: lr·(step+1)/warmup
  EXPECT_FLOAT_EQ(s(9), 6e-4f);
  EXPECT_FLOAT_EQ(s(50), 6e-4f);
  s.kind = llm::ScheduleKind::kLinear;
  EXPECT_NEAR(s(60), (6e-4 + 6e-5) / 2, 1e-9);  // double, rounded once to float: ≤ 3e-11 + float(6e-4)'s 3e-11
  EXPECT_NEAR(s(110), 6e-5, 1e-10);
}

// Book appendix D: G = [[1,2],[2,4]] has norm 5 and is scaled by 1/5 to norm 1.
TEST(BookClosedForm, ClippingExample) {
  std::vector<float> g = {1, 2, 2, 4};
  const double norm = ref::global_grad_norm(g.data(), g.size());
  EXPECT_DOUBLE_EQ(norm, 5.0);
  ref::clip_gradients(g.data(), g.size(), 1.0f, norm);
  EXPECT_FLOAT_EQ(g[0], 0.2f);
  EXPECT_FLOAT_EQ(g[1], 0.4f);
  EXPECT_FLOAT_EQ(g[3], 0.8f);
  // g holds 1/5·{1,2,2,4} rounded to float (2^-24 relative each), squares summed in double: |norm − 1| ≤ 2^-24·1.0
  EXPECT_NEAR(ref::global_grad_norm(g.data(), g.size()), 1.0, 1e-6);
  // below the threshold nothing changes
  ref::clip_gradients(g.data(), g.size(), 2.0f, 1.0);
  EXPECT_FLOAT_EQ(g[0], 0.2f);
  // large n: blocks of the deterministic sum line up with the closed form Σ i² (exact in double)
  std::vector<float> big(100000);
  double want = 0;
  for (size_t i = 0; i < big.size(); i++) { big[i] = (float)(i % 7); want += (double)(i % 7) * (i % 7); }
  EXPECT_DOUBLE_EQ(ref::global_grad_norm(big.data(), big.size()), std::sqrt(want));
}

TEST(AdamW, FirstStepIsSignTimesLr) {
  // t = 1: m̂ = g, v̂ = g², update = g/(|g|+eps) ≈ sign(g); decoupled decay lr·wd·θ.
  std::vector<float> p = {1.0f, -2.0f, 0.5f}, g = {0.3f, -4.0f, 0.0f}, m(3, 0), v(3, 0);
  ref::adamw_update(p.data(), g.data(), m.data(), v.data(), 3, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1);
  // ~8 fp32 ops per element (m, v, bias corrections, sqrt, divide, decay): ≤ 8 ulp of |p| < 2 (ulp 1.2e-7) = 1e-6;
  // g/(|g| + eps) differs from sign(g) by eps/|g| ≤ 3.4e-8, × lr = 3.4e-9. p[2] (g = 0): decay only, ≤ 3 ulp of 0.5.
  EXPECT_NEAR(p[0], 1.0f - 0.1f * (1.0f + 0.01f * 1.0f), 1e-6);
  EXPECT_NEAR(p[1], -2.0f - 0.1f * (-1.0f + 0.01f * -2.0f), 1e-6);
  EXPECT_NEAR(p[2], 0.5f - 0.1f * 0.01f * 0.5f, 1e-7);
  EXPECT_NEAR(m[0], 0.1f * 0.3f, 1e-7);  // one product of floats (0.1f = 1 − 0.9f to 2^-24): ≪ 1e-7; a wrong β1 ≥ 3e-3
  // (1 - 0.999f) = 9.99987e-4, not 1e-3: v is 1.3e-5 relative below 0.016; bound 1e-4 relative
  EXPECT_NEAR(v[1], 0.001 * 16.0, 0.016 * 1e-4);
}

TEST(AdamW, DecayMasks) {
  auto mat = llm::decay_mask(llm::DecayMode::kMatrices);
  for (auto k : {llm::kWte, llm::kWpe, llm::kQkvw, llm::kAttprojw, llm::kFcw, llm::kFcprojw, llm::kLmHead})
    EXPECT_TRUE(mat[k]) << k;
  for (auto k : {llm::kLn1w, llm::kLn1b, llm::kQkvb, llm::kAttprojb, llm::kLn2w, llm::kLn2b, llm::kFcb, llm::kFcprojb,
                 llm::kLnfw, llm::kLnfb})
    EXPECT_FALSE(mat[k]) << k;
  auto all = llm::decay_mask(llm::DecayMode::kAll);
  for (bool b : all) EXPECT_TRUE(b);
}

// Random123's known-answer vectors for philox4x32_10.
TEST(Philox, Random123KnownAnswers) {
  auto run = [](llm::Philox4 c, uint32_t k0, uint32_t k1) { return llm::philox4x32_10(c, k0, k1); };
  auto r = run({{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u); EXPECT_EQ(r.v[1], 0xe169c58du); EXPECT_EQ(r.v[2], 0xbc57ac4cu); EXPECT_EQ(r.v[3], 0x9b00dbd8u);
  r = run({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(r.v[0], 0x408f276du); EXPECT_EQ(r.v[1], 0x41c83b0eu); EXPECT_EQ(r.v[2], 0xa20bc7c6u); EXPECT_EQ(r.v[3], 0x6d5451fdu);
  r = run({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(r.v[0], 0xd16cfe09u); EXPECT_EQ(r.v[1], 0x94fdccebu); EXPECT_EQ(r.v[2], 0x5001e420u); EXPECT_EQ(r.v[3], 0x24126ea1u);
}

// dropout_uniform / dropout_step_seed against the numpy implementation in scripts/gen_reference.py.
TEST(Philox, MatchesNumpyReference) {
  llmtest::Fixture fx(llmtest::fixture_path("philox_kat.bin"));
  const auto seed = fx.i64("seed"), index = fx.i64("index");
  const auto stream = fx.i32("stream");
  const auto want = fx.f32("uniform");
  ASSERT_EQ(want.size(), seed.size());
  for (size_t i = 0; i < want.size(); i++)
    EXPECT_EQ(llm::dropout_uniform((uint64_t)seed[i], (uint32_t)stream[i], (uint64_t)index[i]), want[i]) << i;
  // the 4-at-a-time form gives the same numbers
  for (size_t i = 0; i < want.size(); i++) {
    float u[4];
    llm::dropout_uniform4((uint64_t)seed[i], (uint32_t)stream[i], (uint64_t)index[i] >> 2, u);
    EXPECT_EQ(u[index[i] & 3], want[i]) << i;
  }
  const auto args = fx.i64("step_seed_args");
  EXPECT_EQ(llm::dropout_step_seed(args[0], args[1], (uint32_t)args[2]), (uint64_t)fx.i64("step_seed")[0]);
}

TEST(Dropout, RateScaleAndIdentity) {
  const size_t n = 200000;
  std::vector<float> x(n, 1.0f), y(n), dx(n, 0.0f);
  llm::DropoutSpec d{0.25f, 99, llm::dropout_stream(3, llm::kDropResidMlp)};
  ref::dropout_forward(y.data(), x.data(), n, d);
  size_t kept = 0;
  for (float v : y) {
    if (v != 0.0f) { kept++; EXPECT_FLOAT_EQ(v, 1.0f / 0.75f); }
  }
  // binomial sd = sqrt(0.75·0.25/n) = 9.7e-4, 0.005 ≈ 5 sd (fixed seed and counter-based Philox: the count is
  // the same on every CPU, so this cannot flake)
  EXPECT_NEAR((double)kept / n, 0.75, 0.005);
  ref::dropout_backward(dx.data(), x.data(), n, d);
  for (size_t i = 0; i < n; i++) EXPECT_EQ(dx[i], y[i]);  // same mask, same scale
  // another stream gives another mask
  llm::DropoutSpec d2 = d;
  d2.stream = llm::dropout_stream(3, llm::kDropAttn);
  std::vector<float> y2(n);
  ref::dropout_forward(y2.data(), x.data(), n, d2);
  EXPECT_NE(y, y2);
  // odd lengths: the 4-element grouping agrees with dropout_keep element by element
  std::vector<float> z(7, 2.0f), zo(7);
  ref::dropout_forward(zo.data(), z.data(), 7, d);
  for (size_t i = 0; i < 7; i++) EXPECT_EQ(zo[i], llm::dropout_keep(d, i) ? 2.0f / 0.75f : 0.0f) << i;
  // p = 0 is the identity
  ref::dropout_forward(y2.data(), x.data(), n, llm::DropoutSpec{});
  EXPECT_EQ(y2, x);
}

}  // namespace
