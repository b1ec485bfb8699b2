// finetune_gpu.cuh — fine-tuning on the device: `train_gpt2cu finetune-classify | classify | finetune-instruct`.
//
// The trunk is gpu/gpt2_gpu.cuh's GPT2 with its fine-tuning hooks: the spec's frozen tensors (no weight-gradient
// GEMM, no AdamW update, no backward below the lowest trainable block), LoRA adapters on every linear and the LM
// head (gpu/linear.cuh), another head on the trunk's output. This file adds only what is fine-tuning's own: the
// classification head (C → N at the last position), the head and adapter tensors with their AdamW, the LoRA merge
// and the inspection used by the tests. The semantics are cpu/classifier.h's FinetuneGPT2 — the same spec rules
// (finetune_tensor_trainable), the same initial head/adapters (finetune_init), the same losses — so the shared
// driver (host/finetune_main.h) prints the same numbers on both (tests/test_finetune_gpu.cu).
// Storage floatX: float (the reference's math up to summation order) or __nv_bfloat16 (bf16 weights, activations
// and gradients; fp32 master weights and AdamW state, stochastic rounding as in training).
// Dropout is not applied (the book fine-tunes with drop_rate 0). Activations grow to the largest B·T seen
// (instruction batches vary in length) and are reused.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "host/finetune_main.h"  // FinetuneBackend, the driver
#include "gpu/gpt2_gpu.cuh"     // GPT2: the trunk
#include "gpu/generate.cuh"     // GenerateModel: greedy responses after finetune-instruct
#include "host/error.h"
#include "host/finetune_spec.h"
#include "host/gpt2_config.h"
#include "host/program.h"
#include "kernels/cls_head.cuh"

namespace gpu {

template <class floatX>
class FinetuneGPU final : public llm::FinetuneBackend {
 public:
  static constexpr bool kBf16 = !std::is_same<floatX, float>::value;

  FinetuneGPU(const GPT2Config& c, std::vector<float>&& params, const llm::FinetuneSpec& spec, cudaStream_t stream = 0)
      : c_(c), spec_(spec), stream_(stream) {
    n_ = llm::num_parameters(c_);
    if (params.size() != n_) llm::fail("fine-tune: ", params.size(), " parameters given, the config needs ", n_);
    spec_ = llm::finetune_check_spec(c_, spec_);
    kern::attention_check_shape("fine-tune", 1, 1, c_.channels, c_.num_heads);
    GPT2Config trunk = c_;
    trunk.dropout = 0.0f;  // never applied here; also what --attention auto decides on
    model_ = std::make_unique<GPT2<floatX>>(trunk, 1, 1, false, nullptr, 0, stream_);
    model_->set_weights(params.data());
    const int N = spec_.num_classes;
    auto trainable = [&](ParamTensor k, int layer) { return llm::finetune_tensor_trainable(c_, spec_, k, layer); };
    const ParamTensor lm_head = c_.tied_head ? llm::kWte : llm::kLmHead;
    model_->set_trainable(trainable, N == 0 && spec_.train_head && trainable(lm_head, 0));
    if (N > 0) model_->set_head_width(N);
    // extra tensors, one flat array: head W (N,C), head b (N), then the LoRA slots (cpu layout)
    llm::FinetuneInit init = llm::finetune_init(c_, spec_);
    head_b_at_ = (size_t)N * c_.channels;
    lora_at_ = head_b_at_ + N;
    std::vector<float> extra(lora_at_ + init.lora.size());
    std::copy(init.head_w.begin(), init.head_w.end(), extra.begin());
    std::copy(init.head_b.begin(), init.head_b.end(), extra.begin() + head_b_at_);
    std::copy(init.lora.begin(), init.lora.end(), extra.begin() + lora_at_);
    upload_extra(extra);
    if (!extra.empty()) {
      extra_grads_.resize(extra.size());
      zeroed(extra_m_, extra.size());
      zeroed(extra_v_, extra.size());
    }
    if (spec_.lora_rank > 0) {
      typename Linears<floatX>::Adapters ad;
      ad.rank = spec_.lora_rank;
      ad.alpha = spec_.lora_alpha;
      for (size_t off : init.lora_off) {
        ad.a.push_back(extra_.get() + lora_at_ + off);
        ad.da.push_back(extra_grads_.get() + lora_at_ + off);
      }
      model_->set_adapters(std::move(ad));
    }
    zero_grad();
  }

  size_t num_trainable() const override {
    size_t n = (spec_.lora_rank > 0 ? extra_.size() - lora_at_ : 0) + (head_trainable() ? lora_at_ : 0);
    for (int k = 0; k < llm::kNumParamTensors; k++) {
      const auto t = (ParamTensor)k;
      const int layers = GPT2<floatX>::per_layer(t) ? c_.num_layers : 1;
      for (int l = 0; l < layers; l++) n += model_->trainable(t, l) ? model_->size(t) / layers : 0;
    }
    return n;
  }

  float forward_classify(const int* inputs, const int* labels, int B, int T) override {
    if (spec_.num_classes == 0) llm::fail("forward_classify on a model without a classification head");
    const int N = spec_.num_classes, C = c_.channels;
    llm::finetune_check_batch(c_, spec_, inputs, labels, B, T);
    trunk_forward(inputs, B, T);
    classify_ = true;
    reserve_head(B);
    kern::last_token_gather(last_.get(), model_->trunk_out(), B, T, C, stream_);
    model_->linears().forward(cls_logits_.get(), nullptr, last_.get(), extra_.get(), extra_.get() + head_b_at_, B, C, N,
                              model_->head_slot(), stream_, kern::MatmulOptions{});
    logits_host_.resize((size_t)B * N);
    download(logits_host_.data(), cls_logits_.get(), (size_t)B * N);
    have_targets_ = labels != nullptr;
    if (!labels) return -1.0f;
    CUDA_CHECK(cudaMemcpyAsync(targets_.get(), labels, B * sizeof(int), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(dlogits_.get(), cls_logits_.get(), (size_t)B * N * sizeof(floatX),
                               cudaMemcpyDeviceToDevice, stream_));
    kern::fused_classifier(dlogits_.get(), losses_.get(), targets_.get(), valid_.get(), B, N, N, 1.0f, true, stream_);
    kern::classifier_mean_loss(mean_loss_.get(), losses_.get(), valid_.get(), B, stream_);
    float loss = 0.0f;
    CUDA_CHECK(cudaMemcpyAsync(&loss, mean_loss_.get(), sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    return loss;
  }

  // The LM head is the trunk's own (GPT2::forward: softmax + loss + dlogits in place, -100 ignored).
  float forward_lm(const int* inputs, const int* targets, int B, int T) override {
    if (spec_.num_classes != 0) llm::fail("forward_lm on a model with a classification head");
    llm::finetune_check_batch(c_, spec_, inputs, targets, B, T);
    model_->set_batch_shape(B, T);
    classify_ = false;
    have_targets_ = targets != nullptr;
    return model_->forward(inputs, targets, false, 0, have_targets_);
  }

  void zero_grad() override {
    model_->zero_grad();  // nothing when no base tensor trains
    if (extra_grads_.size())
      CUDA_CHECK(cudaMemsetAsync(extra_grads_.get(), 0, extra_grads_.size() * sizeof(floatX), stream_));
  }

  // Accumulates (+=) the gradients of the trainable tensors from the last forward (which needs labels/targets).
  void backward() override {
    if (!have_targets_) llm::fail("fine-tune backward: the last forward had no labels/targets");
    have_targets_ = false;  // the dlogits are consumed
    if (classify_) {  // only the last position carries gradient
      const int B = model_->B(), T = model_->T(), C = c_.channels, N = spec_.num_classes;
      model_->linears().backward(dlast_.get(), head_trainable() ? extra_grads_.get() : nullptr,
                                 head_trainable() ? extra_grads_.get() + head_b_at_ : nullptr, dlogits_.get(),
                                 last_.get(), extra_.get(), nullptr, head_scratch_.get(), B, C, N, model_->head_slot(),
                                 stream_, kern::MatmulOptions{});
      kern::last_token_scatter(model_->trunk_grad(), dlast_.get(), B, T, C, stream_);
      model_->backward_trunk();
    } else {
      model_->backward();
    }
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // AdamW (betas 0.9/0.999, eps 1e-8, decay on every trainable tensor, no clipping) on the trainable ranges only:
  // the trunk's through GPT2::update (its mask), the head's and the adapters' here.
  void adamw_step(float lr, float wd, int t) override {
    if (model_->has_grads()) {
      AdamWSettings hp;
      hp.beta1 = 0.9f;
      hp.beta2 = 0.999f;
      hp.eps = 1e-8f;
      hp.weight_decay = wd;
      hp.decay.fill(true);
      hp.seed = spec_.seed;
      model_->update(lr, t, 0.0f, hp);
    }
    auto extra_range = [&](size_t o, size_t n, int id) {
      kern::adamw_update(extra_.get() + o, kBf16 ? extra_master_.get() + o : (float*)nullptr, extra_grads_.get() + o,
                         extra_m_.get() + o, extra_v_.get() + o, n, lr, 0.9f, 0.999f, 1e-8f, wd, t,
                         rounding_seed(spec_.seed, t, id), stream_);
    };
    if (head_trainable() && lora_at_ > 0) extra_range(0, lora_at_, llm::kNumParamTensors);
    if (spec_.lora_rank > 0) extra_range(lora_at_, extra_.size() - lora_at_, llm::kNumParamTensors + 1);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  int predict(int b) const override {
    const int N = spec_.num_classes;
    const float* row = logits_host_.data() + (size_t)b * N;
    return (int)(std::max_element(row, row + N) - row);  // first maximum on ties
  }

  void set_head(const float* w, const float* b) override {
    std::vector<float> all(extra_.size());
    get_extra(all.data());
    std::copy_n(w, head_b_at_, all.begin());
    std::copy_n(b, lora_at_ - head_b_at_, all.begin() + head_b_at_);
    upload_extra(all);
  }
  // The adapters are merged on the host (host/finetune_spec.h's finetune_merge_lora, the same arithmetic as
  // gpt2_cpu's export); the device model itself is left as it is.
  GPT2Config export_merged(std::vector<float>* params, std::vector<float>* head_w,
                           std::vector<float>* head_b) override {
    std::vector<float> extra(extra_.size());
    params->resize(n_);
    get_weights(params->data());
    get_extra(extra.data());
    head_w->assign(extra.begin(), extra.begin() + head_b_at_);
    head_b->assign(extra.begin() + head_b_at_, extra.begin() + lora_at_);
    return llm::finetune_merge_lora(c_, spec_, extra.data() + lora_at_, params, head_w);
  }

  // The attention implementation (gpu/attention_path.h; fine-tuning has no attention dropout): `requested` itself
  // or auto's choice, llm::Error when it cannot run. Default: portable.
  AttentionPath set_attention(AttentionPath requested) { return model_->set_attention(requested); }

  // ---- inspection (tests) ----
  const float* class_logits() const { return logits_host_.data(); }
  // fp32 (master) weights: base n floats, extra = head W, head b, LoRA slots (FinetuneGPT2's layout)
  void get_weights(float* out) const { model_->get_weights(out); }
  void get_extra(float* out) const {
    if (!extra_.size()) return;
    if (kBf16) CUDA_CHECK(cudaMemcpy(out, extra_master_.get(), extra_.size() * sizeof(float), cudaMemcpyDeviceToHost));
    else download(out, extra_.get(), extra_.size());
  }
  size_t extra_size() const { return extra_.size(); }
  size_t lora_offset() const { return lora_at_; }  // where the adapters start inside the extra array
  bool has_base_grads() const { return model_->has_grads(); }
  void get_base_grads(float* out) const { model_->get_grads_as_float(out); }
  void get_extra_grads(float* out) const { download(out, extra_grads_.get(), extra_.size()); }

 private:
  bool head_trainable() const { return spec_.lora_rank == 0 && spec_.train_head; }

  // The batch was checked by finetune_check_batch (host/finetune_spec.h: the same messages on both programs).
  void trunk_forward(const int* inputs, int B, int T) {
    model_->set_batch_shape(B, T);
    model_->forward_trunk(inputs, false, 0);
  }

  // Classification head buffers for B rows (kept; grow only).
  void reserve_head(int B) {
    if ((size_t)B <= head_rows_) return;
    const size_t N = spec_.num_classes, C = c_.channels;
    head_rows_ = B;
    last_.resize(B * C);
    dlast_.resize(B * C);
    cls_logits_.resize(B * N);
    dlogits_.resize(B * N);
    losses_.resize(B);
    targets_.resize(B);
    valid_.resize(1);
    mean_loss_.resize(1);
    head_scratch_.resize(kern::matmul_backward_scratch_floats(B, (int)std::max<size_t>(N, spec_.lora_rank)));
  }

  // host fp32 -> the extra tensors (round to nearest) and, in bf16, their fp32 master copy
  void upload_extra(const std::vector<float>& src) {
    if (extra_.size() != src.size()) extra_.resize(src.size());
    if (src.empty()) return;
    std::vector<floatX> tmp(src.size());
    for (size_t i = 0; i < src.size(); i++) tmp[i] = kern::from_float<floatX>(src[i]);
    CUDA_CHECK(cudaMemcpy(extra_.get(), tmp.data(), tmp.size() * sizeof(floatX), cudaMemcpyHostToDevice));
    if (!kBf16) return;
    if (extra_master_.size() != src.size()) extra_master_.resize(src.size());
    CUDA_CHECK(cudaMemcpy(extra_master_.get(), src.data(), src.size() * sizeof(float), cudaMemcpyHostToDevice));
  }
  void download(float* out, const floatX* src, size_t n) const {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<floatX> tmp(n);
    CUDA_CHECK(cudaMemcpy(tmp.data(), src, n * sizeof(floatX), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) out[i] = kern::to_float(tmp[i]);
  }
  static void zeroed(DeviceArray<float>& a, size_t n) {
    a.resize(n);
    CUDA_CHECK(cudaMemset(a.get(), 0, n * sizeof(float)));
  }

  GPT2Config c_;
  llm::FinetuneSpec spec_;
  cudaStream_t stream_;
  std::unique_ptr<GPT2<floatX>> model_;
  size_t n_ = 0, head_b_at_ = 0, lora_at_ = 0, head_rows_ = 0;
  bool classify_ = false, have_targets_ = false;
  DeviceArray<floatX> extra_, extra_grads_;  // head W, head b, the LoRA slots
  DeviceArray<float> extra_master_, extra_m_, extra_v_;
  // the classification head's activations (B rows)
  DeviceArray<floatX> last_, dlast_, cls_logits_, dlogits_;
  DeviceArray<float> losses_, mean_loss_, head_scratch_;
  DeviceArray<int> targets_, valid_;
  std::vector<float> logits_host_;  // (B,N) class logits of the last forward_classify
};

// The fine-tuning verbs of train_gpt2cu: gpt2_cpu's flags (host/finetune_main.h) plus --precision bf16|fp32
// and --attention auto|flash|cudnn|portable (the chosen path is printed on stderr: stdout stays gpt2_cpu's).
// check_device runs before any device allocation.
inline void add_finetune_commands(llm::Program& program, const std::function<void()>& check_device) {
  struct Flags {
    std::string precision = "bf16", attention = "auto";
  };
  auto flags = std::make_shared<Flags>();
  llm::FinetuneProgram prog;
  prog.extra_options = [flags](CLI::App& app) {
    app.add_option("--precision", flags->precision,
                   "bf16 (weights, activations, gradients; fp32 master + AdamW) or fp32")
        ->check(CLI::IsMember({"bf16", "fp32"}))
        ->capture_default_str();
    // checked when the model is made (llm::Error, exit 2), not by CLI11: the driver's parse errors exit otherwise
    app.add_option("--attention", flags->attention, "auto, flash, cudnn or portable (README: --attention)")
        ->capture_default_str();
  };
  prog.make_backend = [flags, check_device](const GPT2Config& c, std::vector<float>&& params,
                                            const llm::FinetuneSpec& spec) -> std::unique_ptr<llm::FinetuneBackend> {
    const std::string& precision = flags->precision;
    const AttentionPath requested = parse_attention_path(flags->attention);
    check_device();
    auto pick = [&](auto model) -> std::unique_ptr<llm::FinetuneBackend> {
      const AttentionPath chosen = model->set_attention(requested);
      std::fprintf(stderr, "train_gpt2cu: attention %s\n", attention_choice(chosen, requested).c_str());
      return model;
    };
    if (precision == "fp32") return pick(std::make_unique<FinetuneGPU<float>>(c, std::move(params), spec));
    return pick(std::make_unique<FinetuneGPU<__nv_bfloat16>>(c, std::move(params), spec));
  };
  prog.make_generator = [flags](const GPT2Config& c, std::vector<float>&& params) -> std::unique_ptr<llm::LogitsModel> {
    const AttentionPath requested = parse_attention_path(flags->attention);
    if (flags->precision == "fp32") {
      auto g = std::make_unique<GenerateModel<float>>(c, params, true);
      g->set_attention(requested);
      return g;
    }
    auto g = std::make_unique<GenerateModel<__nv_bfloat16>>(c, params, true);
    g->set_attention(requested);
    return g;
  };
  llm::add_finetune_commands(program, prog);
}

}  // namespace gpu
