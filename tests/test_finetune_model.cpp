// FinetuneGPT2 against PyTorch (scripts/gen_finetune_fixtures.py, float64 references): the last-token classification
// head with a frozen subset (gradients only where trainable, frozen weights bit-identical after AdamW steps), the
// masked instruction loss, LoRA forward/backward, LoRA merge, the classifier file round trip.
// Tolerance 1e-5 (relative to the tensor's max|ref|, losses relative to the loss): the references are float64, so
// this is our fp32 error alone. Every value comes out of a chain of fp32 reductions of K ≤ 64 terms (C = 16, 4C = 64,
// V = 64, B·T ≤ 18 tokens), each within γ_64 = 64·u/(1 − 64·u) = 3.8e-6 (u = 2^-24) of its Σ|terms|, whatever
// the summation order or vector width; 1e-5 ≈ 2.6·γ_64 covers the few reductions along a path (their errors are
// independent, so they add in quadrature: ~√10·√64·u ≈ 1.5e-6 typical). The worst tensor is printed (err/bound).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <unistd.h>

#include "cpu/classifier.h"
#include "host/finetune_spec.h"  // ClassifierFile, save/load_classifier
#include "host/error.h"

using namespace llm;

namespace {

using Fixture = std::map<std::string, std::vector<double>>;

Fixture load(const std::string& name) {
  std::ifstream f(std::string(LLM_SOURCE_DIR) + "/tests/fixtures/finetune/" + name);
  EXPECT_TRUE(f.good()) << name;
  Fixture fx;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream is(line);
    std::string key;
    size_t n;
    is >> key >> n;
    std::vector<double> v(n);
    for (auto& x : v) is >> x;
    fx[key] = v;
  }
  return fx;
}

GPT2Config tiny_config() {
  GPT2Config c;
  c.vocab_size = c.padded_vocab_size = 64;
  c.channels = 16;
  c.num_layers = 2;
  c.num_heads = 2;
  c.max_seq_len = 16;
  c.qkv_bias = true;
  c.tied_head = true;
  return c;
}

std::vector<float> to_f(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }
std::vector<int> to_i(const std::vector<double>& v) { return std::vector<int>(v.begin(), v.end()); }

// Relative to the reference tensor's largest magnitude: max |got - ref| <= tol · max(|ref|).
void expect_close(const float* got, const std::vector<double>& ref, double tol, const std::string& what) {
  ASSERT_NE(got, nullptr) << what;
  double scale = 0, err = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    scale = std::max(scale, std::fabs(ref[i]));
    err = std::max(err, std::fabs(got[i] - ref[i]));
  }
  std::printf("  %-28s max|err| / max|ref| %.3e (bound %.0e)\n", what.c_str(), err / std::max(scale, 1e-30), tol);
  EXPECT_LE(err, tol * std::max(scale, 1e-30)) << what << ": max error " << err << " scale " << scale;
  EXPECT_GT(scale, 0.0) << what << " reference is all zero (test would be vacuous)";
}

const char* kBlock[] = {"ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb", "ln2w", "ln2b", "fcw", "fcb",
                        "fcprojw", "fcprojb"};
const ParamTensor kBlockT[] = {kLn1w, kLn1b, kQkvw, kQkvb, kAttprojw, kAttprojb, kLn2w, kLn2b, kFcw, kFcb,
                               kFcprojw, kFcprojb};

}  // namespace

TEST(FinetuneModel, ClassifyHeadFrozenSubsetMatchesTorch) {
  Fixture fx = load("classify.txt");
  const GPT2Config c = tiny_config();
  FinetuneSpec s;
  s.num_classes = 2;  // default: last block + final LayerNorm + head
  FinetuneGPT2 m(c, to_f(fx["params"]), s);
  std::copy(fx["head_w"].begin(), fx["head_w"].end(), m.head_weight());
  std::copy(fx["head_b"].begin(), fx["head_b"].end(), m.head_bias());
  const auto x = to_i(fx["inputs"]), y = to_i(fx["labels"]);
  m.zero_grad();
  const float loss = m.forward_classify(x.data(), y.data(), 3, 6);
  EXPECT_NEAR(loss, fx["loss"][0], 1e-5 * std::fabs(fx["loss"][0]));
  expect_close(m.class_logits(), fx["logits"], 1e-5, "logits");
  m.backward();
  const size_t C = c.channels;
  const size_t per_layer[] = {C, C, 3 * C * C, 3 * C, C * C, C, C, C, 4 * C * C, 4 * C, 4 * C * C, C};
  for (int k = 0; k < 12; k++) {
    const float* g = m.base_grad(kBlockT[k]);
    ASSERT_NE(g, nullptr) << kBlock[k];
    expect_close(g + per_layer[k] * (c.num_layers - 1), fx[std::string("grad_") + kBlock[k]], 1e-5, kBlock[k]);
    // the frozen block 0 slice got no gradient work
    for (size_t i = 0; i < per_layer[k]; i++) ASSERT_EQ(g[i], 0.0f) << kBlock[k];
  }
  expect_close(m.base_grad(kLnfw), fx["grad_lnfw"], 1e-5, "lnfw");
  expect_close(m.base_grad(kLnfb), fx["grad_lnfb"], 1e-5, "lnfb");
  expect_close(m.head_weight_grad(), fx["grad_head_w"], 1e-5, "head_w");
  expect_close(m.head_bias_grad(), fx["grad_head_b"], 1e-5, "head_b");
  EXPECT_EQ(m.base_grad(kWte), nullptr);  // embeddings frozen: no gradient at all
  EXPECT_EQ(m.base_grad(kWpe), nullptr);

  // 3 AdamW steps (torch.optim.AdamW lr 1e-3, wd 0.1) on the same batch
  FinetuneGPT2 t(c, to_f(fx["params"]), s);
  std::copy(fx["head_w"].begin(), fx["head_w"].end(), t.head_weight());
  std::copy(fx["head_b"].begin(), fx["head_b"].end(), t.head_bias());
  const std::vector<float> before(t.base(), t.base() + num_parameters(c));
  for (int step = 1; step <= 3; step++) {
    t.zero_grad();
    const float l = t.forward_classify(x.data(), y.data(), 3, 6);
    EXPECT_NEAR(l, fx["step_losses"][step - 1], 1e-5 * std::fabs(fx["step_losses"][step - 1])) << step;
    t.backward();
    t.adamw_step(1e-3f, 0.1f, step);
  }
  // frozen tensors bit-identical; trainable ones follow torch
  const auto off = param_offsets(c);
  for (size_t i = 0; i < off[kLnfw]; i++) {
    bool trainable = false;
    for (int k = 0; k < 12; k++)
      if (i >= off[kBlockT[k]] + per_layer[k] && i < off[kBlockT[k]] + 2 * per_layer[k]) trainable = true;
    if (!trainable) ASSERT_EQ(t.base()[i], before[i]) << "frozen parameter " << i << " changed";
  }
  for (int k = 0; k < 12; k++) {
    std::vector<double> ref = fx[std::string("after_") + kBlock[k]];
    std::vector<float> got(t.base_tensor(kBlockT[k]) + per_layer[k], t.base_tensor(kBlockT[k]) + 2 * per_layer[k]);
    if (kBlockT[k] == kQkvb)  // the key bias has an exactly-zero gradient (softmax ignores a per-row shift), so
      for (size_t i = C; i < 2 * C; i++) got[i] = (float)(ref[i] = 0.0);  // Adam's normalised step there is noise
    expect_close(got.data(), ref, 1e-5, std::string("after ") + kBlock[k]);
  }
  expect_close(t.base_tensor(kLnfw), fx["after_lnfw"], 1e-5, "after lnfw");
  expect_close(t.head_weight(), fx["after_head_w"], 1e-5, "after head_w");
}

TEST(FinetuneModel, MaskedInstructionLossMatchesTorch) {
  Fixture fx = load("lm_masked.txt");
  const GPT2Config c = tiny_config();
  FinetuneSpec s;  // LM head, every tensor trainable
  s.train_from_layer = 0;
  s.train_embeddings = true;
  FinetuneGPT2 m(c, to_f(fx["params"]), s);
  const auto x = to_i(fx["inputs"]), y = to_i(fx["targets"]);
  m.zero_grad();
  const float loss = m.forward_lm(x.data(), y.data(), 3, 5);
  EXPECT_NEAR(loss, fx["loss"][0], 1e-5 * fx["loss"][0]);
  m.backward();
  expect_close(m.base_grad(kWte), fx["grad_wte"], 1e-5, "wte (embedding + tied head)");
  expect_close(m.base_grad(kWpe), fx["grad_wpe"], 1e-5, "wpe");
  expect_close(m.base_grad(kQkvw), fx["grad_qkvw"], 1e-5, "qkvw");
  expect_close(m.base_grad(kFcprojw), fx["grad_fcprojw"], 1e-5, "fcprojw");
  expect_close(m.base_grad(kLnfw), fx["grad_lnfw"], 1e-5, "lnfw");
}

TEST(FinetuneModel, LoraForwardBackwardMatchesTorchAndMerges) {
  Fixture fx = load("lora.txt");
  const GPT2Config c = tiny_config();
  FinetuneSpec s;
  s.lora_rank = 2;
  s.lora_alpha = 3.0f;
  FinetuneGPT2 m(c, to_f(fx["params"]), s);
  const int L = c.num_layers;
  auto slot = [&](int sl, auto fn) { return sl < 4 * L ? fn(sl / 4, sl % 4) : fn(L, 0); };
  for (int sl = 0; sl <= 4 * L; sl++) {
    const auto A = fx["A" + std::to_string(sl)], B = fx["B" + std::to_string(sl)];
    std::copy(A.begin(), A.end(), slot(sl, [&](int l, int k) { return m.lora_a(l, k); }));
    std::copy(B.begin(), B.end(), slot(sl, [&](int l, int k) { return m.lora_b(l, k); }));
  }
  EXPECT_EQ(m.num_trainable(), (size_t)(L * (2 * (16 + 48) + 2 * (16 + 16) + 2 * (16 + 64) + 2 * (64 + 16)) + 2 * (16 + 64)));
  const auto x = to_i(fx["inputs"]), y = to_i(fx["targets"]);
  m.zero_grad();
  const float loss = m.forward_lm(x.data(), y.data(), 2, 7);
  EXPECT_NEAR(loss, fx["loss"][0], 1e-5 * fx["loss"][0]);
  expect_close(m.lm_logits(), fx["logits"], 1e-5, "logits");
  const std::vector<float> lora_logits(m.lm_logits(), m.lm_logits() + 2 * 7 * 64);
  m.backward();
  for (int sl = 0; sl <= 4 * L; sl++) {
    expect_close(slot(sl, [&](int l, int k) { return m.lora_a_grad(l, k); }), fx["dA" + std::to_string(sl)], 1e-5,
                 "dA" + std::to_string(sl));
    expect_close(slot(sl, [&](int l, int k) { return m.lora_b_grad(l, k); }), fx["dB" + std::to_string(sl)], 1e-5,
                 "dB" + std::to_string(sl));
  }
  for (int k = 0; k < kNumParamTensors; k++) EXPECT_EQ(m.base_grad((ParamTensor)k), nullptr) << k;  // base frozen
  // merging W += (alpha/r)·B·A reproduces the adapted logits without adapters (tied head becomes untied)
  m.merge_lora();
  EXPECT_FALSE(m.config().tied_head);
  m.forward_lm(x.data(), nullptr, 2, 7);
  double err = 0, lmax = 0;
  for (size_t i = 0; i < lora_logits.size(); i++) {
    err = std::max(err, (double)std::fabs(m.lm_logits()[i] - lora_logits[i]));
    lmax = std::max(lmax, (double)std::fabs(lora_logits[i]));
  }
  // merged W + (α/r)·B·A (rounded once per element) vs x·W + (α/r)·(x·A)·B: two fp32 orders of the same ops, the
  // header's argument with both sides in fp32 (2× its 1e-5): 2e-5 of max|logit| ≈ 4.6 here → 1e-4 absolute
  std::printf("  merged vs adapter logits: max|Δ| %.3e, max|logit| %.3e (bound 1e-4)\n", err, lmax);
  EXPECT_LT(err, 1e-4);
}

TEST(FinetuneModel, BadSpecAndClassifierFile) {
  const GPT2Config c = tiny_config();
  const std::vector<float> p(num_parameters(c), 0.01f);
  FinetuneSpec s;
  s.lora_rank = -1;
  try {
    FinetuneGPT2 m(c, p, s);
    FAIL() << "negative rank accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("LoRA rank -1"), std::string::npos);
  }
  s.lora_rank = 0;
  s.num_classes = 1;
  EXPECT_THROW(FinetuneGPT2(c, p, s), Error);

  ClassifierFile f;
  f.config = c;
  f.params = p;
  f.head_w.assign(2 * 16, 0.5f);
  f.head_b = {1.0f, -1.0f};
  f.labels = {"not spam", "spam"};
  f.max_length = 12;
  const std::string path = ::testing::TempDir() + "finetune_cls.bin";
  save_classifier(path, f);
  const ClassifierFile g = load_classifier(path);
  EXPECT_EQ(g.labels, f.labels);
  EXPECT_EQ(g.max_length, 12);
  EXPECT_EQ(g.params, f.params);
  EXPECT_EQ(g.head_b, f.head_b);
  // truncated file -> clear error
  { std::ofstream o(path, std::ios::binary | std::ios::in | std::ios::out); }
  std::FILE* fp = std::fopen(path.c_str(), "r+b");
  std::fseek(fp, 0, SEEK_END);
  const long size = std::ftell(fp);
  std::fclose(fp);
  ASSERT_EQ(truncate(path.c_str(), size - 4), 0);
  try {
    load_classifier(path);
    FAIL() << "truncated file accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected"), std::string::npos) << e.what();
  }
}

// The fine-tuning path words a bad batch as it always has (finetune_check_batch, shared with the GPU backend),
// not as the trunk's train/eval checks: each message is the one the CLI prints after "error: ".
TEST(FinetuneModel, BadBatchKeepsTheFineTuningMessages) {
  const GPT2Config c = tiny_config();  // V = 64, context 16
  const std::vector<float> p(num_parameters(c), 0.01f);
  FinetuneSpec cls_spec, lm_spec;
  cls_spec.num_classes = 2;
  FinetuneGPT2 cls(c, p, cls_spec), lm(c, p, lm_spec);
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const std::vector<int> bad_token = {1, 2, 64, 3}, ok = {1, 2, 3, 4}, bad_target = {1, -100, 70, 2};
  const int bad_label[2] = {0, 2};
  EXPECT_EQ(message([&] { cls.forward_classify(bad_token.data(), nullptr, 2, 2); }),
            "fine-tune forward: token 64 at position 2 not in [0,64)");
  EXPECT_EQ(message([&] { lm.forward_lm(bad_token.data(), nullptr, 1, 4); }),
            "fine-tune forward: token 64 at position 2 not in [0,64)");
  EXPECT_EQ(message([&] { lm.forward_lm(ok.data(), bad_target.data(), 1, 4); }),
            "fine-tune: target 70 at position 2 not in [0,64) or -100");
  EXPECT_EQ(message([&] { cls.forward_classify(ok.data(), bad_label, 2, 2); }),
            "fine-tune: label 2 of row 1 not in [0,2)");
  EXPECT_EQ(message([&] { lm.forward_lm(ok.data(), nullptr, 0, 4); }),
            "fine-tune forward: batch 0 and length 4 must be positive");
  const std::vector<int> long_row(17, 1);
  EXPECT_EQ(message([&] { lm.forward_lm(long_row.data(), nullptr, 1, 17); }),
            "fine-tune forward: sequence length 17 exceeds the context 16");
}
