// test_finetune_gpu.cu — the device fine-tuning backend (gpu/finetune_gpu.cuh) against the CPU reference
// FinetuneGPT2 (cpu/classifier.h), built through the CUDA-on-CPU layer (label finetune).
//
// Both sides start from the same tiny GPT-2 (GPT2Model::init_gpt2) and the same spec, so from the same head and
// adapters (finetune_init), and run the same AdamW steps on the same batches. Compared at every step: the loss,
// the class logits (classification), every trainable gradient (base tensors, head, LoRA adapters) — and after
// the steps every weight: trainable ones within tolerance, frozen ones BIT-IDENTICAL to the start (no gradient
// work, no update), on the device as on the CPU.
// Errors: gradients and logits max|gpu − ref| / max|ref| per tensor; weights after the steps ‖gpu − ref‖₂/‖ref‖₂
// per tensor (AdamW turns gradient elements of rounding-noise size into ±lr steps of either sign, so single
// elements are not a stable statistic; the norm is). fp32: both sides compute in fp32 and differ only in
// summation order (GEMM blocking, online softmax, fused residual+LayerNorm). One K-term reduction in two orders
// differs by ≤ 2γ_K·Σ|terms| (γ_K = K·u/(1 − K·u), u = 2^-24); here K ≤ 128 (4C, C = 32, V = 60, ≤ 3·24 tokens),
// 2γ_128 = 1.5e-5 per op, and the ~40 ops along a path (3 layers, forward and backward) round independently:
// ≈ √(40·128)·u = 4.3e-6 in quadrature. Step 1 (identical weights): tol = 1e-5, 2.3× that (measured ≤ 4.8e-7).
// Weights after the steps: 3e-5 norm-wise — AdamW divides each element's gradient by its own RMS, so a relative
// gradient error ρ moves a step by 2ρ·lr undamped; Σlr = 8e-3 over 4 steps against RMS weights ≈ 0.02 gives
// 2ρ·0.4, i.e. 3e-5 covers elements ~4× worse conditioned than tol (seen worst in the last block's key weights of
// a classifier, whose gradient Σ_j dk_j·x_jᵀ has Σ_j dk_j = 0, one query per sequence: a cancellation; measured
// ≤ 5.3e-6). Later steps run on those drifted weights, so loss, logits and gradients there get tol + the
// weights' 3e-5 = 4e-5 (was 1e-5 for all steps; measured ≤ 2.5e-6, InstructMaskedLm grads).
// The key bias (middle third of qkvb) has a mathematically zero gradient (softmax ignores a constant shift of a
// row's scores); both sides compute rounding noise there, which AdamW turns into ±lr steps of either sign, so the
// key bias is left out of the weight comparison (as in test_trainer_parity.cu).
// bf16: every stored activation/gradient is rounded to 8 significant bits (2^-9 relative on average); through
// ~10 stored intermediates per layer the first step's gradients (same weights on both sides) differ by a few
// 2^-8 → bound 2e-2; later steps add the weights' drift (1e-1). Weights: RMS(p_gpu − p_ref) ≤ 0.1·lr·steps,
// a tenth of the distance AdamW can move a weight. The loss within 1e-2 relative.
// Losses are compared relative to max(loss, 1): near 0 a cross-entropy's error is set by the logits' size, not
// by the loss's own.
// Plus the programs: `train_gpt2cu_cpu finetune-classify --precision fp32` prints the same per-epoch losses and
// accuracies as `gpt2_cpu finetune-classify` on a slice of the spam data.
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "parity_util.h"

#include "cpu/classifier.h"
#include "cpu/gpt2_model.h"
#include "gpu/finetune_gpu.cuh"
#include "host/checkpoint.h"

using llm::FinetuneGPT2;
using llm::FinetuneSpec;
using llm::GPT2Config;
using llm::ParamTensor;

namespace {

GPT2Config tiny_config(bool tied = true) {
  GPT2Config c;
  c.vocab_size = 60;
  c.padded_vocab_size = 64;
  c.channels = 32;
  c.num_layers = 3;
  c.num_heads = 4;
  c.max_seq_len = 16;
  c.qkv_bias = true;
  c.tied_head = tied;
  return c;
}

std::vector<float> init_params(const GPT2Config& c) {
  llm::GPT2Model m(c);
  m.init_gpt2(5);
  return std::vector<float>(m.params(), m.params() + llm::num_parameters(c));
}

const char* kNames[llm::kNumParamTensors] = {"wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
                                            "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb",
                                            "lm_head"};

bool per_layer(int k) { return k >= llm::kLn1w && k <= llm::kFcprojb; }

// One parity run: `steps` AdamW steps on batches of B rows; T varies per step in LM mode (instruction batches do).
struct ParityRun {
  GPT2Config c;
  FinetuneSpec spec;
  int B = 3, steps = 4;
  float lr = 2e-3f, wd = 0.1f;
  bool bf16 = false;
};

struct Worst {
  double loss = 0, logits = 0, grad = 0, grad_step1 = 0, weight = 0;
  double weight_rms_lr = 0;  // RMS of (p_gpu − p_ref) over the trainable weights, in units of lr·steps
  float first_loss = 0, last_loss = 0;  // the reference's loss on the first batch before / after the steps
};

template <class floatX>
Worst run_parity(const ParityRun& r) {
  const GPT2Config& c = r.c;
  const std::vector<float> start = init_params(c);
  FinetuneGPT2 cpu(c, start, r.spec);
  gpu::FinetuneGPU<floatX> dev(c, std::vector<float>(start), r.spec);
  EXPECT_EQ(dev.num_trainable(), cpu.num_trainable());
  const bool cls = r.spec.num_classes > 0;
  const bool fp32 = std::is_same<floatX, float>::value;
  const size_t n = llm::num_parameters(c);
  const auto off = llm::param_offsets(c);
  const auto size = llm::param_sizes(c);
  const size_t lora_at = dev.lora_offset(), extra_n = dev.extra_size();
  auto rel = [&](const float* got, const float* ref, size_t m) { return fp32 ? max_rel(got, ref, m) : norm_rel(got, ref, m); };
  Worst w;
  std::mt19937_64 rng(77);
  std::vector<float> g(n), extra(extra_n), extra_g(extra_n);
  std::vector<int> x1, y1;  // the first batch: its loss must have dropped after the steps
  double sq_diff = 0;
  size_t sq_n = 0;
  for (int step = 1; step <= r.steps; step++) {
    const int T = cls ? 8 : (step % 2 ? 8 : 6);
    std::vector<int> x((size_t)r.B * T), y(cls ? r.B : (size_t)r.B * T);
    for (auto& t : x) t = (int)(rng() % c.vocab_size);
    for (size_t i = 0; i < y.size(); i++)  // a learnable class: a function of the last token
      y[i] = cls ? x[i * T + T - 1] % r.spec.num_classes : (i % 5 == 1 ? -100 : (int)(rng() % c.vocab_size));
    if (step == 1) x1 = x, y1 = y;
    cpu.zero_grad();
    dev.zero_grad();
    const float lc = cls ? cpu.forward_classify(x.data(), y.data(), r.B, T) : cpu.forward_lm(x.data(), y.data(), r.B, T);
    const float lg = cls ? dev.forward_classify(x.data(), y.data(), r.B, T) : dev.forward_lm(x.data(), y.data(), r.B, T);
    w.loss = std::max(w.loss, std::fabs((double)lg - lc) / std::max(1.0, (double)std::fabs(lc)));
    if (step == 1) w.first_loss = lc;
    if (cls) {
      w.logits = std::max(w.logits, rel(dev.class_logits(), cpu.class_logits(), (size_t)r.B * r.spec.num_classes));
      for (int b = 0; b < r.B && fp32; b++) EXPECT_EQ(dev.predict(b), cpu.predict(b));
    }
    cpu.backward();
    dev.backward();
    // gradients of every trainable base tensor, the head, the adapters
    if (dev.has_base_grads()) dev.get_base_grads(g.data());
    for (int k = 0; k < llm::kNumParamTensors; k++) {
      const float* ref = cpu.base_grad((ParamTensor)k);
      if (!ref) continue;
      EXPECT_TRUE(dev.has_base_grads());
      const double e = rel(g.data() + off[k], ref, size[k]);
      if (e > w.grad) std::printf("  step %d grad %s %.3g\n", step, kNames[k], e);
      w.grad = std::max(w.grad, e);
      if (step == 1) w.grad_step1 = std::max(w.grad_step1, e);
    }
    if (extra_n) dev.get_extra_grads(extra_g.data());
    if (cpu.head_weight_grad()) {
      const size_t nc = (size_t)r.spec.num_classes * c.channels;
      w.grad = std::max(w.grad, rel(extra_g.data(), cpu.head_weight_grad(), nc));
      w.grad = std::max(w.grad, rel(extra_g.data() + nc, cpu.head_bias_grad(), r.spec.num_classes));
    }
    if (r.spec.lora_rank > 0) {
      const double e = rel(extra_g.data() + lora_at, cpu.lora_a_grad(0, 0), extra_n - lora_at);
      EXPECT_GT(max_rel(extra_g.data() + lora_at, std::vector<float>(extra_n - lora_at, 0.0f).data(), extra_n - lora_at), 0.0);
      w.grad = std::max(w.grad, e);
      if (step == 1) w.grad_step1 = std::max(w.grad_step1, e);
    }
    cpu.adamw_step(r.lr, r.wd, step);
    dev.adamw_step(r.lr, r.wd, step);
  }
  // weights: trainable within tolerance, frozen bit-identical to the start on both sides
  std::vector<float> p(n);
  dev.get_weights(p.data());
  const size_t C = c.channels;
  for (int k = 0; k < llm::kNumParamTensors; k++) {
    if (!size[k]) continue;
    const int layers = per_layer(k) ? c.num_layers : 1;
    const size_t per = size[k] / layers;
    for (int l = 0; l < layers; l++) {
      const size_t o = off[k] + l * per;
      const bool tr = llm::finetune_tensor_trainable(c, cpu.spec(), (ParamTensor)k, l);
      if (!tr) {
        EXPECT_EQ(0, std::memcmp(p.data() + o, start.data() + o, per * 4)) << kNames[k] << " layer " << l << " changed on the device";
        EXPECT_EQ(0, std::memcmp(cpu.base() + o, start.data() + o, per * 4)) << kNames[k] << " layer " << l << " changed on the CPU";
        continue;
      }
      std::vector<float> got(p.data() + o, p.data() + o + per), want(cpu.base() + o, cpu.base() + o + per);
      if (k == llm::kQkvb) {  // without the key bias
        got.erase(got.begin() + C, got.begin() + 2 * C);
        want.erase(want.begin() + C, want.begin() + 2 * C);
      }
      EXPECT_GT(max_rel(got.data(), std::vector<float>(start.data() + o, start.data() + o + got.size()).data(), got.size()), 0.0)
          << kNames[k] << " trainable but unchanged";
      const double e = norm_rel(got.data(), want.data(), got.size());
      if (e > w.weight) std::printf("  weights %s layer %d %.3g\n", kNames[k], l, e);
      w.weight = std::max(w.weight, e);
      for (size_t i = 0; i < got.size(); i++) sq_diff += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
      sq_n += got.size();
    }
  }
  dev.get_extra(extra.data());
  if (cls) {
    const size_t nc = (size_t)r.spec.num_classes * C;
    w.weight = std::max(w.weight, norm_rel(extra.data(), cpu.head_weight(), nc));
    if (r.spec.lora_rank > 0) {  // frozen head: unchanged bit for bit
      EXPECT_EQ(0, std::memcmp(extra.data(), cpu.head_weight(), nc * 4));
    }
  }
  if (r.spec.lora_rank > 0) {
    w.weight = std::max(w.weight, norm_rel(extra.data() + lora_at, cpu.lora_a(0, 0), extra_n - lora_at));
    for (size_t i = lora_at; i < extra_n; i++) {
      const double d = (double)extra[i] - cpu.lora_a(0, 0)[i - lora_at];
      sq_diff += d * d;
    }
    sq_n += extra_n - lora_at;
  }
  w.weight_rms_lr = sq_n ? std::sqrt(sq_diff / sq_n) / (r.lr * r.steps) : 0.0;
  // the first batch again: the reference trained, and the device still agrees
  const int T1 = cls ? (int)x1.size() / r.B : 8;
  w.last_loss = cls ? cpu.forward_classify(x1.data(), y1.data(), r.B, T1) : cpu.forward_lm(x1.data(), y1.data(), r.B, T1);
  const float lg = cls ? dev.forward_classify(x1.data(), y1.data(), r.B, T1) : dev.forward_lm(x1.data(), y1.data(), r.B, T1);
  w.loss = std::max(w.loss, std::fabs((double)lg - w.last_loss) / std::max(1.0, (double)std::fabs(w.last_loss)));
  std::printf("[%s] loss %.3g | logits %.3g | grads %.3g (step 1: %.3g) | weights %.3g (rms %.3g lr·steps) | "
              "ref loss on batch 1 %.4f -> %.4f\n", fp32 ? "fp32" : "bf16", w.loss, w.logits, w.grad, w.grad_step1,
              w.weight, w.weight_rms_lr, w.first_loss, w.last_loss);
  return w;
}

void expect_fp32(const Worst& w) {
  const double tol = 1e-5, drift = 3e-5;  // see the top
  EXPECT_LE(w.grad_step1, tol);           // identical weights: one step's rounding
  EXPECT_LE(w.loss, tol + drift);         // all steps: later ones run on weights up to `drift` apart
  EXPECT_LE(w.logits, tol + drift);
  EXPECT_LE(w.grad, tol + drift);
  EXPECT_LE(w.weight, drift);  // AdamW's 1/sqrt(v) amplifies small elements' relative errors
  EXPECT_LT(w.last_loss, w.first_loss) << "the steps did not train";
}

}  // namespace

TEST(FinetuneGpu, ClassifyDefaultFrozenSubsetFp32) {
  ParityRun r;
  r.c = tiny_config();
  r.spec.num_classes = 2;  // last block + final LayerNorm + head
  r.steps = 6;
  expect_fp32(run_parity<float>(r));
}

TEST(FinetuneGpu, ClassifyAllTrainableThreeClassesFp32) {
  ParityRun r;
  r.c = tiny_config();
  r.spec.num_classes = 3;
  r.spec.train_from_layer = 0;
  r.spec.train_embeddings = true;
  expect_fp32(run_parity<float>(r));
}

TEST(FinetuneGpu, ClassifyLoraFp32) {
  ParityRun r;
  r.c = tiny_config();
  r.spec.num_classes = 2;
  r.spec.lora_rank = 4;
  r.spec.lora_alpha = 8;
  expect_fp32(run_parity<float>(r));
}

TEST(FinetuneGpu, InstructMaskedLmAllTrainableFp32) {
  ParityRun r;
  r.c = tiny_config();
  r.spec.num_classes = 0;
  r.spec.train_from_layer = 0;
  r.spec.train_embeddings = true;
  expect_fp32(run_parity<float>(r));
}

TEST(FinetuneGpu, InstructLoraUntiedFp32) {
  ParityRun r;
  r.c = tiny_config(/*tied=*/false);
  r.spec.num_classes = 0;
  r.spec.lora_rank = 2;
  r.spec.lora_alpha = 4;
  r.lr = 1e-2f;
  expect_fp32(run_parity<float>(r));
}

TEST(FinetuneGpu, ClassifyBf16WithinBounds) {
  ParityRun r;
  r.c = tiny_config();
  r.spec.num_classes = 2;
  r.spec.train_from_layer = 1;
  const Worst w = run_parity<__nv_bfloat16>(r);
  EXPECT_LE(w.loss, 1e-2);
  EXPECT_LE(w.logits, 5e-2);
  EXPECT_LE(w.grad_step1, 2e-2);  // same weights: only the bf16 roundings of this step
  EXPECT_LE(w.grad, 1e-1);        // later steps also see the weights' drift
  // AdamW moves each weight by about lr per step whatever the gradient's size, so elements whose gradient is
  // rounding-noise sized may step in opposite directions; the trajectories must still agree to a small fraction
  // of the total movement
  EXPECT_LE(w.weight_rms_lr, 0.1);
  EXPECT_LT(w.last_loss, w.first_loss);
}

// LoRA export: the device backend's merged weights equal the CPU's after the same training.
TEST(FinetuneGpu, LoraMergeExportMatchesCpu) {
  const GPT2Config c = tiny_config();
  FinetuneSpec s;
  s.num_classes = 0;
  s.lora_rank = 2;
  s.lora_alpha = 2;
  const std::vector<float> start = init_params(c);
  FinetuneGPT2 cpu(c, start, s);
  gpu::FinetuneGPU<float> dev(c, std::vector<float>(start), s);
  std::vector<int> x(16), y(16);
  for (int i = 0; i < 16; i++) x[i] = (i * 7) % c.vocab_size, y[i] = (i * 7 + 3) % c.vocab_size;
  for (int t = 1; t <= 2; t++) {
    cpu.zero_grad(), dev.zero_grad();
    cpu.forward_lm(x.data(), y.data(), 2, 8), dev.forward_lm(x.data(), y.data(), 2, 8);
    cpu.backward(), dev.backward();
    cpu.adamw_step(1e-2f, 0.0f, t), dev.adamw_step(1e-2f, 0.0f, t);
  }
  std::vector<float> p, hw, hb;
  const GPT2Config dc = dev.export_merged(&p, &hw, &hb);
  cpu.merge_lora();
  EXPECT_FALSE(dc.tied_head);  // a merged tied LM head becomes its own tensor
  ASSERT_EQ(p.size(), llm::num_parameters(cpu.config()));
  // W + (α/r)·B·A: the merge is 2 products and an add per element (≤ 3u relative to |W| + |BA|); the adapters
  // after 2 free-running steps differ by ≤ 2·drift·lr·steps-level amounts, tiny next to max|W|: tol = 1e-5 (see top)
  const double e = max_rel(p.data(), cpu.base(), p.size());
  std::printf("merged weights: max|gpu − cpu| / max|cpu| %.3g (bound 1e-5)\n", e);
  EXPECT_LE(e, 1e-5);
}

// A bad batch: the device backend words it as the reference does (both call finetune_check_batch), so both
// programs print the same error line. The CPU side's exact texts: FinetuneModel.BadBatchKeepsTheFineTuningMessages.
TEST(FinetuneGpu, BadBatchSameMessagesAsCpu) {
  const GPT2Config c = tiny_config();
  const std::vector<float> start = init_params(c);
  FinetuneSpec cls_spec, lm_spec;
  cls_spec.num_classes = 2;
  FinetuneGPT2 cpu_cls(c, start, cls_spec), cpu_lm(c, start, lm_spec);
  gpu::FinetuneGPU<float> dev_cls(c, std::vector<float>(start), cls_spec), dev_lm(c, std::vector<float>(start), lm_spec);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const llm::Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const int V = c.vocab_size, T_long = c.max_seq_len + 1;
  const std::vector<int> bad_token = {1, 2, V, 3}, ok = {1, 2, 3, 4}, bad_target = {1, -100, V + 6, 2};
  const std::vector<int> long_row(T_long, 1);
  const int bad_label[2] = {0, 2};
  auto both = [&](auto&& on) {  // on(model of the CPU, model of the device) -> the two messages
    const std::string a = message([&] { on(cpu_cls, cpu_lm); }), b = message([&] { on(dev_cls, dev_lm); });
    EXPECT_EQ(a.rfind("fine-tune", 0), 0u) << a;
    EXPECT_EQ(b, a);
  };
  both([&](auto& cls, auto&) { cls.forward_classify(bad_token.data(), nullptr, 2, 2); });
  both([&](auto& cls, auto&) { cls.forward_classify(ok.data(), bad_label, 2, 2); });
  both([&](auto&, auto& lm) { lm.forward_lm(bad_token.data(), nullptr, 1, 4); });
  both([&](auto&, auto& lm) { lm.forward_lm(ok.data(), bad_target.data(), 1, 4); });
  both([&](auto&, auto& lm) { lm.forward_lm(ok.data(), nullptr, 0, 4); });
  both([&](auto&, auto& lm) { lm.forward_lm(long_row.data(), nullptr, 1, T_long); });
}

// ---- the programs ----

namespace {

struct Result {
  int code;
  std::string out;
};
Result run(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t k = fread(buf, 1, sizeof buf, p)) out.append(buf, k);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}
std::string slice(const std::string& name, int n) {
  std::ifstream in(std::string(LLM_SOURCE_DIR) + "/data/finetune/" + name);
  const std::string path = ::testing::TempDir() + "ftg_" + name;
  std::ofstream out(path);
  std::string line;
  for (int i = 0; i <= n && std::getline(in, line); i++) out << line << "\n";
  return path;
}
// The numbers of every "epoch ..." / "final: ..." line, in order.
std::vector<double> report_numbers(const std::string& out) {
  std::vector<double> v;
  std::istringstream is(out);
  std::string line;
  const std::regex num("[0-9]+\\.[0-9]+");
  while (std::getline(is, line)) {
    if (line.rfind("epoch", 0) != 0 && line.rfind("final:", 0) != 0) continue;
    for (std::sregex_iterator it(line.begin(), line.end(), num), end; it != end; ++it) v.push_back(std::stod(it->str()));
  }
  return v;
}

}  // namespace

TEST(FinetuneGpuCli, ClassifySameLossesAsGpt2Cpu) {
  GPT2Config c;  // the GPT-2 vocabulary, 2 blocks of 32 channels
  c.num_layers = 2;
  c.channels = 32;
  c.num_heads = 4;
  c.max_seq_len = 64;
  llm::GPT2Model m(c);
  m.init_gpt2(7);
  const std::string model = ::testing::TempDir() + "ftg_tiny.bin";
  llm::save_checkpoint(model, c, m.params());
  const std::string train = slice("sms_spam_train.csv", 48), test = slice("sms_spam_test.csv", 16);
  const std::string args = " finetune-classify --model " + model + " --train " + train + " --test " + test +
                           " --epochs 2 -b 8 --lr 2e-3 --max-length 24 --threads 1 --out ";
  const Result ref = run(std::string(GPT2_CPU_BIN) + args + ::testing::TempDir() + "ftg_cpu.cls");
  const Result got = run(std::string(TRAIN_GPT2CU_BIN) + args + ::testing::TempDir() + "ftg_gpu.cls --precision fp32");
  ASSERT_EQ(ref.code, 0) << ref.out;
  ASSERT_EQ(got.code, 0) << got.out;
  std::printf("gpt2_cpu:\n%s\ntrain_gpt2cu_cpu:\n%s\n", ref.out.c_str(), got.out.c_str());
  const auto a = report_numbers(ref.out), b = report_numbers(got.out);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_GE(a.size(), 10u);
  // printed to 4 decimals: ±5e-5 per program, 1e-4 together, + 1e-4 for fp32 (losses agree to ≤ tol + drift = 4e-5
  // relative, above, at losses ≤ 2); an accuracy that differs by one example moves by ≥ 1/16
  for (size_t i = 0; i < a.size(); i++) EXPECT_NEAR(b[i], a[i], 2e-4) << "number " << i;
  // the device classifier file classifies with either program
  const std::string text = " classify --model " + ::testing::TempDir() + "ftg_gpu.cls --text \"Win a free prize now\"";
  const Result c1 = run(std::string(GPT2_CPU_BIN) + text), c2 = run(std::string(TRAIN_GPT2CU_BIN) + text + " --precision fp32");
  EXPECT_EQ(c1.code, 0) << c1.out;
  // (run() merges stderr, where train_gpt2cu names its attention path at startup: that line is not the answer)
  const std::string tag = "train_gpt2cu: attention portable (auto)\n";
  std::string answer = c2.out;
  if (answer.rfind(tag, 0) == 0) answer.erase(0, tag.size());
  EXPECT_EQ(c1.out, answer);
  const Result bad = run(std::string(TRAIN_GPT2CU_BIN) + " finetune-classify --model " + model + " --train " + train +
                         " --lora-rank -1 --out /dev/null");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.out.find("error: --lora-rank -1 must be positive"), std::string::npos) << bad.out;
}
