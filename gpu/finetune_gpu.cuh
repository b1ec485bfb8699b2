// finetune_gpu.cuh — fine-tuning on the device: `train_gpt2cu finetune-classify | classify | finetune-instruct`.
//
// Why a separate model (not gpu/gpt2_gpu.cuh's GPT2): fine-tuning computes something else (a C → N head at the
// last position, LoRA branches on every linear) and trains a subset, so frozen tensors must cost nothing: no
// weight-gradient GEMM (matmul_backward with dweight == nullptr skips it), no AdamW update, and no backward at
// all below the lowest trainable block. The semantics are cpu/classifier.h's FinetuneGPT2, op for op — the same
// spec rules (finetune_tensor_trainable), the same initial head/adapters (finetune_init), the same losses — so
// the shared driver (cpu/finetune_main.h) prints the same numbers on both (tests/test_finetune_gpu.cu).
// Storage floatX: float (the reference's math up to summation order) or __nv_bfloat16 (bf16 weights, activations
// and gradients; fp32 master weights and AdamW state for what trains, stochastic rounding as in training).
// Dropout is not applied (the book fine-tunes with drop_rate 0). Activations are sized for the largest B·T seen
// (instruction batches vary in length) and reused.
// Dataflow per block (as gpt2_gpu.cuh, each residual add fused with the LayerNorm after it):
//   r2 = x + attproj(attn(qkv(ln1(x))));  x' = r2 + fcproj(gelu(fc(ln2(r2))))
// and every linear y = x·Wᵀ + b [+ s·(x·Aᵀ)·Bᵀ, s = alpha/r, h = x·Aᵀ kept for backward].
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cpu/classifier.h"
#include "cpu/finetune_main.h"
#include "gpu/gpt2_gpu.cuh"  // DeviceArray, rounding_seed, params_from_master_kernel
#include "host/error.h"
#include "host/gpt2_config.h"
#include "gpu/generate.cuh"  // GenerateModel: greedy responses after finetune-instruct
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
    off_ = llm::param_offsets(c_);
    size_ = llm::param_sizes(c_);
    llm::FinetuneInit init = llm::finetune_init(c_, spec_);
    lora_off_ = init.lora_off;
    lora_in_ = init.lora_in;
    // extra tensors, one flat array: head W (N,C), head b (N), then the LoRA slots (cpu layout)
    const size_t N = spec_.num_classes, C = c_.channels;
    head_b_at_ = N * C;
    lora_at_ = N * C + N;
    std::vector<float> extra(lora_at_ + init.lora.size());
    std::copy(init.head_w.begin(), init.head_w.end(), extra.begin());
    std::copy(init.head_b.begin(), init.head_b.end(), extra.begin() + head_b_at_);
    std::copy(init.lora.begin(), init.lora.end(), extra.begin() + lora_at_);
    for (int k = 0; k < llm::kNumParamTensors; k++)
      any_base_ = any_base_ || trainable((ParamTensor)k, c_.num_layers - 1) || trainable((ParamTensor)k, 0);
    upload(params_, kBf16 ? &master_ : nullptr, params);
    upload(extra_, kBf16 ? &extra_master_ : nullptr, extra);
    if (any_base_) {
      grads_.resize(n_);
      zeroed(m_, n_);
      zeroed(v_, n_);
    }
    if (!extra.empty()) {
      extra_grads_.resize(extra.size());
      zeroed(extra_m_, extra.size());
      zeroed(extra_v_, extra.size());
    }
    dummy_ln_.resize(2 * C);  // LayerNorm weight/bias gradients of frozen LayerNorms land here (discarded)
    zero_grad();
  }

  size_t num_trainable() const override {
    size_t n = (spec_.lora_rank > 0 ? extra_.size() - lora_at_ : 0) + (head_trainable() ? lora_at_ : 0);
    for (int k = 0; k < llm::kNumParamTensors; k++) {
      const auto t = (ParamTensor)k;
      if (!per_layer(t)) { n += trainable(t) ? size_[k] : 0; continue; }
      for (int l = 0; l < c_.num_layers; l++) n += trainable(t, l) ? size_[k] / c_.num_layers : 0;
    }
    return n;
  }

  float forward_classify(const int* inputs, const int* labels, int B, int T) override {
    if (spec_.num_classes == 0) llm::fail("forward_classify on a model without a classification head");
    const int N = spec_.num_classes, C = c_.channels;
    if (labels)
      for (int b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= N) llm::fail("fine-tune: label ", labels[b], " of row ", b, " not in [0,", N, ")");
    forward_trunk(inputs, B, T);
    classify_ = true;
    kern::last_token_gather(last_.get(), lnf_.get(), B, T, C, stream_);
    linear_forward(cls_logits_.get(), last_.get(), B, head_linear(), lora_h(c_.num_layers * llm::kNumBlockLinears));
    logits_host_.resize((size_t)B * N);
    download(logits_host_.data(), cls_logits_.get(), (size_t)B * N);
    have_targets_ = labels != nullptr;
    if (!labels) return -1.0f;
    CUDA_CHECK(cudaMemcpyAsync(targets_.get(), labels, B * sizeof(int), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(dlogits_.get(), cls_logits_.get(), (size_t)B * N * sizeof(floatX),
                               cudaMemcpyDeviceToDevice, stream_));
    kern::fused_classifier(dlogits_.get(), losses_.get(), targets_.get(), valid_.get(), B, N, N, 1.0f, true, stream_);
    return mean_loss(B);
  }

  float forward_lm(const int* inputs, const int* targets, int B, int T) override {
    if (spec_.num_classes != 0) llm::fail("forward_lm on a model with a classification head");
    const int V = c_.vocab_size, Vp = c_.padded_vocab_size, BT = B * T;
    if (targets)
      for (int i = 0; i < BT; i++)
        if (targets[i] != -100 && (targets[i] < 0 || targets[i] >= V))
          llm::fail("fine-tune: target ", targets[i], " at position ", i, " not in [0,", V, ") or -100");
    forward_trunk(inputs, B, T);
    classify_ = false;
    linear_forward(lm_logits_.get(), lnf_.get(), BT, head_linear(), lora_h(c_.num_layers * llm::kNumBlockLinears));
    have_targets_ = targets != nullptr;
    if (!targets) return -1.0f;
    CUDA_CHECK(cudaMemcpyAsync(targets_.get(), targets, BT * sizeof(int), cudaMemcpyHostToDevice, stream_));
    // softmax + loss + dlogits in place over the logits (the LM logits are never read back)
    kern::fused_classifier(lm_logits_.get(), losses_.get(), targets_.get(), valid_.get(), BT, V, Vp, 1.0f, true,
                           stream_);
    return mean_loss(BT);
  }

  void zero_grad() override {
    if (any_base_) CUDA_CHECK(cudaMemsetAsync(grads_.get(), 0, n_ * sizeof(floatX), stream_));
    if (extra_grads_.size())
      CUDA_CHECK(cudaMemsetAsync(extra_grads_.get(), 0, extra_grads_.size() * sizeof(floatX), stream_));
  }

  // Accumulates (+=) the gradients of the trainable tensors from the last forward (which needs labels/targets).
  void backward() override {
    if (!have_targets_) llm::fail("fine-tune backward: the last forward had no labels/targets");
    have_targets_ = false;  // the dlogits are consumed
    const int L = c_.num_layers, C = c_.channels, NH = c_.num_heads, B = B_, T = T_, BT = B * T;
    const size_t btc = (size_t)BT * C;
    const int head_slot = L * llm::kNumBlockLinears;
    if (classify_) {  // only the last position carries gradient
      linear_backward(dlast_.get(), dlogits_.get(), last_.get(), B, head_linear(), lora_h(head_slot));
      kern::last_token_scatter(dln_.get(), dlast_.get(), B, T, C, stream_);
    } else {
      linear_backward(dln_.get(), lm_logits_.get(), lnf_.get(), BT, head_linear(), lora_h(head_slot));
    }
    const int low = (spec_.lora_rank > 0 || spec_.train_embeddings) ? 0 : spec_.train_from_layer;
    if (low >= L && !spec_.train_final_ln) return;
    floatX* dres = dres_.get();
    floatX* dln = dln_.get();
    float* lns = ln_scratch_.get();
    const bool lnf_tr = trainable(llm::kLnfw) && spec_.lora_rank == 0;
    kern::fill_zero(dres, btc, stream_);
    kern::layernorm_backward(dres, lnf_tr ? g(llm::kLnfw) : dummy_ln_.get(), lnf_tr ? g(llm::kLnfb) : dummy_ln_.get() + C,
                             lns, (const floatX*)dln, act(residual_, L, btc), p(llm::kLnfw), lnf_mean_.get(),
                             lnf_rstd_.get(), BT, C, stream_);
    for (int l = L - 1; l >= low; l--) {
      const size_t a = (size_t)l * btc;
      const int s = l * llm::kNumBlockLinears;
      // MLP branch: x_{l+1} = r2 + fcproj(gelu(fc(ln2(r2))))
      linear_backward(dfch_gelu_.get(), dres, fch_gelu_.get() + 4 * a, BT, block_linear(l, llm::kLinFcproj),
                      lora_h(s + llm::kLinFcproj));
      kern::gelu_backward(dfch_.get(), fch_.get() + 4 * a, dfch_gelu_.get(), 4 * btc, false, stream_);
      linear_backward(dln, dfch_.get(), ln2_.get() + a, BT, block_linear(l, llm::kLinFc), lora_h(s + llm::kLinFc));
      kern::layernorm_backward(dres, ln_grad(llm::kLn2w, l), ln_grad(llm::kLn2b, l), lns, (const floatX*)dln,
                               residual2_.get() + a, p(llm::kLn2w) + (size_t)l * C, stat(ln2_mean_, l),
                               stat(ln2_rstd_, l), BT, C, stream_);
      // attention branch: r2 = x_l + attproj(attn(qkv(ln1(x_l))))
      linear_backward(datty_.get(), dres, atty_.get() + a, BT, block_linear(l, llm::kLinAttproj),
                      lora_h(s + llm::kLinAttproj));
      gpu::attention_backward(attention_, dqkv_.get(), att_scratch_.get(), datty_.get(), qkv_.get() + 3 * a,
                              atty_.get() + a, lse_.get() + (size_t)l * BT * NH, B, T, C, NH, llm::DropoutSpec{},
                              stream_);
      linear_backward(dln, dqkv_.get(), ln1_.get() + a, BT, block_linear(l, llm::kLinQkv), lora_h(s + llm::kLinQkv));
      kern::layernorm_backward(dres, ln_grad(llm::kLn1w, l), ln_grad(llm::kLn1b, l), lns, (const floatX*)dln,
                               act(residual_, l, btc), p(llm::kLn1w) + (size_t)l * C, stat(ln1_mean_, l),
                               stat(ln1_rstd_, l), BT, C, stream_);
    }
    if (spec_.train_embeddings && spec_.lora_rank == 0)
      kern::encoder_backward(g(llm::kWte), g(llm::kWpe), enc_scratch_.get(), (const floatX*)dres, inputs_host_.data(), B,
                             T, C, stream_);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // AdamW (betas 0.9/0.999, eps 1e-8, decay on every trainable tensor) on the trainable ranges only.
  void adamw_step(float lr, float wd, int t) override {
    const int L = c_.num_layers;
    for (int k = 0; k < llm::kNumParamTensors && any_base_; k++) {
      const auto tk = (ParamTensor)k;
      size_t o = off_[k], n = size_[k];
      if (n == 0) continue;
      if (per_layer(tk)) {  // only blocks [from, L)
        if (!trainable(tk, L - 1)) continue;
        const size_t per = n / L;
        o += (size_t)spec_.train_from_layer * per;
        n = (size_t)(L - spec_.train_from_layer) * per;
      } else if (!trainable(tk)) {
        continue;
      }
      kern::adamw_update(params_.get() + o, kBf16 ? master_.get() + o : (float*)nullptr, grads_.get() + o, m_.get() + o,
                         v_.get() + o, n, lr, 0.9f, 0.999f, 1e-8f, wd, t, rounding_seed(spec_.seed, t, k), stream_,
                         1.0f, 512, o - off_[k]);
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
    upload(extra_, kBf16 ? &extra_master_ : nullptr, all);
  }

  // The adapters are merged on the host by the reference (FinetuneGPT2::merge_lora, the same arithmetic as
  // gpt2_cpu's export); the device model itself is left as it is.
  GPT2Config export_merged(std::vector<float>* params, std::vector<float>* head_w,
                           std::vector<float>* head_b) override {
    std::vector<float> base(n_), extra(extra_.size());
    get_weights(base.data());
    get_extra(extra.data());
    if (spec_.lora_rank == 0) {
      *params = std::move(base);
      head_w->assign(extra.begin(), extra.begin() + head_b_at_);
      head_b->assign(extra.begin() + head_b_at_, extra.begin() + lora_at_);
      return c_;
    }
    llm::FinetuneGPT2 host(c_, std::move(base), spec_);
    std::copy(extra.begin() + lora_at_, extra.end(), host.lora_a(0, 0));  // slot 0 starts the flat adapter array
    if (spec_.num_classes > 0) {
      std::copy(extra.begin(), extra.begin() + head_b_at_, host.head_weight());
      std::copy(extra.begin() + head_b_at_, extra.begin() + lora_at_, host.head_bias());
    }
    host.merge_lora();
    params->assign(host.base(), host.base() + llm::num_parameters(host.config()));
    head_w->assign(extra.begin(), extra.begin() + head_b_at_);  // the head's adapter is merged into head_w below
    head_b->assign(extra.begin() + head_b_at_, extra.begin() + lora_at_);
    if (spec_.num_classes > 0) std::copy_n(host.head_weight(), head_b_at_, head_w->begin());
    return host.config();
  }

  // The attention implementation (gpu/attention_path.h; fine-tuning has no attention dropout): `requested` itself
  // or auto's choice, llm::Error when it cannot run. Default: portable.
  AttentionPath set_attention(AttentionPath requested) {
    attention_ = resolve_attention(requested, attention_facts(c_.channels, c_.num_heads, kBf16, 0.0f));
    return attention_;
  }

  // ---- inspection (tests) ----
  const float* class_logits() const { return logits_host_.data(); }
  // fp32 (master) weights: base n floats, extra = head W, head b, LoRA slots (FinetuneGPT2's layout)
  void get_weights(float* out) const {
    if (kBf16) CUDA_CHECK(cudaMemcpy(out, master_.get(), n_ * sizeof(float), cudaMemcpyDeviceToHost));
    else download(out, params_.get(), n_);
  }
  void get_extra(float* out) const {
    if (!extra_.size()) return;
    if (kBf16) CUDA_CHECK(cudaMemcpy(out, extra_master_.get(), extra_.size() * sizeof(float), cudaMemcpyDeviceToHost));
    else download(out, extra_.get(), extra_.size());
  }
  size_t extra_size() const { return extra_.size(); }
  size_t lora_offset() const { return lora_at_; }  // where the adapters start inside the extra array
  bool has_base_grads() const { return any_base_; }
  void get_base_grads(float* out) const { download(out, grads_.get(), n_); }
  void get_extra_grads(float* out) const { download(out, extra_grads_.get(), extra_.size()); }

 private:
  struct Lin {  // one linear layer: weight (out,in), bias (out) or null, their gradients (null = frozen), LoRA slot
    const floatX *w, *b;
    floatX *dw, *db;
    int in, out, lora;
  };
  static bool per_layer(ParamTensor k) {
    return k != llm::kWte && k != llm::kWpe && k != llm::kLnfw && k != llm::kLnfb && k != llm::kLmHead;
  }
  bool trainable(ParamTensor k, int layer = 0) const { return llm::finetune_tensor_trainable(c_, spec_, k, layer); }
  bool head_trainable() const { return spec_.lora_rank == 0 && spec_.train_head; }
  floatX* p(ParamTensor k) const { return params_.get() + off_[k]; }
  floatX* g(ParamTensor k) const { return grads_.get() + off_[k]; }
  static floatX* act(const DeviceArray<floatX>& a, int l, size_t per_layer) { return a.get() + (size_t)l * per_layer; }
  float* stat(const DeviceArray<float>& a, int l) const { return a.get() + (size_t)l * B_ * T_; }
  floatX* ln_grad(ParamTensor k, int l) const {
    return trainable(k, l) ? g(k) + (size_t)l * c_.channels : dummy_ln_.get() + (k == llm::kLn1b || k == llm::kLn2b ? c_.channels : 0);
  }
  floatX* lora_h(int slot) const {
    return spec_.lora_rank > 0 ? lora_h_.get() + (size_t)slot * B_ * T_ * spec_.lora_rank : nullptr;
  }

  Lin block_linear(int l, int kind) const {
    const size_t C = c_.channels;
    auto pick = [&](ParamTensor w, ParamTensor b, size_t wn, size_t bn, int in, int out) {
      Lin lin;
      lin.w = p(w) + l * wn;
      lin.b = size_[b] ? p(b) + l * bn : nullptr;
      lin.dw = trainable(w, l) ? g(w) + l * wn : nullptr;
      lin.db = lin.b && trainable(b, l) ? g(b) + l * bn : nullptr;
      lin.in = in;
      lin.out = out;
      lin.lora = spec_.lora_rank > 0 ? l * llm::kNumBlockLinears + kind : -1;
      return lin;
    };
    switch (kind) {
      case llm::kLinQkv: return pick(llm::kQkvw, llm::kQkvb, 3 * C * C, 3 * C, C, 3 * C);
      case llm::kLinAttproj: return pick(llm::kAttprojw, llm::kAttprojb, C * C, C, C, C);
      case llm::kLinFc: return pick(llm::kFcw, llm::kFcb, 4 * C * C, 4 * C, C, 4 * C);
      default: return pick(llm::kFcprojw, llm::kFcprojb, 4 * C * C, C, 4 * C, C);
    }
  }
  Lin head_linear() const {
    Lin lin;
    lin.in = c_.channels;
    lin.lora = spec_.lora_rank > 0 ? c_.num_layers * llm::kNumBlockLinears : -1;
    if (spec_.num_classes > 0) {
      lin.w = extra_.get();
      lin.b = extra_.get() + head_b_at_;
      lin.dw = head_trainable() ? extra_grads_.get() : nullptr;
      lin.db = head_trainable() ? extra_grads_.get() + head_b_at_ : nullptr;
      lin.out = spec_.num_classes;
    } else {
      const ParamTensor k = c_.tied_head ? llm::kWte : llm::kLmHead;
      lin.w = p(k);
      lin.b = nullptr;
      lin.dw = trainable(k) && spec_.train_head ? g(k) : nullptr;
      lin.db = nullptr;
      lin.out = c_.padded_vocab_size;
    }
    return lin;
  }
  const floatX* lora_a(int slot) const { return extra_.get() + lora_at_ + lora_off_[slot]; }

  // out (N,out) = x (N,in)·Wᵀ + b [+ s·(x·Aᵀ)·Bᵀ, h = x·Aᵀ (N,r) saved]
  void linear_forward(floatX* out, const floatX* x, int N, const Lin& L, floatX* h) {
    kern::matmul_forward(out, (floatX*)nullptr, x, L.w, L.b, N, L.in, L.out, stream_);
    if (L.lora < 0) return;
    const int r = spec_.lora_rank;
    const floatX* A = lora_a(L.lora);
    const floatX* Bm = A + (size_t)r * L.in;
    kern::matmul_forward(h, (floatX*)nullptr, x, A, (const floatX*)nullptr, N, L.in, r, stream_);
    kern::matmul_forward(lora_tmp_.get(), (floatX*)nullptr, (const floatX*)h, Bm, (const floatX*)nullptr, N, r, L.out,
                         stream_);
    kern::scaled_add(out, (const floatX*)lora_tmp_.get(), spec_.lora_alpha / r, (size_t)N * L.out, true, stream_);
  }

  // dx (N,in) = dout·W [+ the LoRA path] (overwritten; null: not needed), dW/db += (if trainable), dA/dB +=.
  void linear_backward(floatX* dx, const floatX* dout, const floatX* x, int N, const Lin& L, const floatX* h) {
    kern::matmul_backward(dx, L.dw, L.db, dout, x, L.w, (const floatX*)nullptr, mm_scratch_.get(), N, L.in, L.out,
                          stream_);
    if (L.lora < 0) return;
    const int r = spec_.lora_rank;
    const floatX* A = lora_a(L.lora);
    const floatX* Bm = A + (size_t)r * L.in;
    floatX* dA = extra_grads_.get() + lora_at_ + lora_off_[L.lora];
    floatX* dB = dA + (size_t)r * L.in;
    kern::scaled_add(lora_tmp_.get(), dout, spec_.lora_alpha / r, (size_t)N * L.out, false, stream_);  // s·dout
    kern::matmul_backward(lora_dh_.get(), dB, (floatX*)nullptr, (const floatX*)lora_tmp_.get(), h, Bm,
                          (const floatX*)nullptr, mm_scratch_.get(), N, r, L.out, stream_);  // through B
    kern::matmul_backward(dx ? lora_dx_.get() : (floatX*)nullptr, dA, (floatX*)nullptr, (const floatX*)lora_dh_.get(),
                          x, A, (const floatX*)nullptr, mm_scratch_.get(), N, L.in, r, stream_);  // through A
    if (dx) kern::scaled_add(dx, (const floatX*)lora_dx_.get(), 1.0f, (size_t)N * L.in, true, stream_);
  }

  void forward_trunk(const int* inputs, int B, int T) {
    const int L = c_.num_layers, C = c_.channels, NH = c_.num_heads;
    if (B <= 0 || T <= 0) llm::fail("fine-tune forward: batch ", B, " and length ", T, " must be positive");
    if (T > c_.max_seq_len) llm::fail("fine-tune forward: sequence length ", T, " exceeds the context ", c_.max_seq_len);
    const size_t BT = (size_t)B * T, btc = BT * C;
    for (size_t i = 0; i < BT; i++)
      if (inputs[i] < 0 || inputs[i] >= c_.vocab_size)
        llm::fail("fine-tune forward: token ", inputs[i], " at position ", i, " not in [0,", c_.vocab_size, ")");
    reserve(B, T);
    inputs_host_.assign(inputs, inputs + BT);
    CUDA_CHECK(cudaMemcpyAsync(inputs_.get(), inputs, BT * sizeof(int), cudaMemcpyHostToDevice, stream_));
    floatX* x0 = act(residual_, 0, btc);
    kern::encoder_forward(x0, inputs_.get(), p(llm::kWte), p(llm::kWpe), B, T, C, stream_);
    kern::layernorm_forward(ln1_.get(), stat(ln1_mean_, 0), stat(ln1_rstd_, 0), x0, p(llm::kLn1w), p(llm::kLn1b),
                            (int)BT, C, stream_);
    for (int l = 0; l < L; l++) {
      const size_t a = (size_t)l * btc;
      const int s = l * llm::kNumBlockLinears;
      const size_t c = C;
      floatX* qkv = qkv_.get() + 3 * a;
      linear_forward(qkv, ln1_.get() + a, (int)BT, block_linear(l, llm::kLinQkv), lora_h(s + llm::kLinQkv));
      gpu::attention_forward(attention_, atty_.get() + a, lse_.get() + (size_t)l * BT * NH, qkv, B, T, C, NH,
                             llm::DropoutSpec{}, stream_);
      linear_forward(branch_.get(), atty_.get() + a, (int)BT, block_linear(l, llm::kLinAttproj),
                     lora_h(s + llm::kLinAttproj));
      kern::fused_residual_layernorm_forward(residual2_.get() + a, ln2_.get() + a, stat(ln2_mean_, l),
                                             stat(ln2_rstd_, l), act(residual_, l, btc), branch_.get(),
                                             p(llm::kLn2w) + l * c, p(llm::kLn2b) + l * c, (int)BT, C, stream_);
      linear_forward(fch_.get() + 4 * a, ln2_.get() + a, (int)BT, block_linear(l, llm::kLinFc), lora_h(s + llm::kLinFc));
      kern::gelu_forward(fch_gelu_.get() + 4 * a, fch_.get() + 4 * a, 4 * btc, stream_);
      linear_forward(branch_.get(), fch_gelu_.get() + 4 * a, (int)BT, block_linear(l, llm::kLinFcproj),
                     lora_h(s + llm::kLinFcproj));
      const bool last = l == L - 1;
      kern::fused_residual_layernorm_forward(
          act(residual_, l + 1, btc), last ? lnf_.get() : ln1_.get() + a + btc,
          last ? lnf_mean_.get() : stat(ln1_mean_, l + 1), last ? lnf_rstd_.get() : stat(ln1_rstd_, l + 1),
          residual2_.get() + a, branch_.get(), last ? p(llm::kLnfw) : p(llm::kLn1w) + (l + 1) * c,
          last ? p(llm::kLnfb) : p(llm::kLn1b) + (l + 1) * c, (int)BT, C, stream_);
    }
  }

  float mean_loss(int rows) {
    kern::classifier_mean_loss(mean_loss_.get(), losses_.get(), valid_.get(), rows, stream_);
    float loss = 0.0f;
    CUDA_CHECK(cudaMemcpyAsync(&loss, mean_loss_.get(), sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    return loss;
  }

  // Activations for (B, T): buffers grow to the largest B·T seen, and are kept.
  void reserve(int B, int T) {
    B_ = B;
    T_ = T;
    const size_t BT = (size_t)B * T;
    if (BT <= cap_) return;
    const size_t L = c_.num_layers, C = c_.channels, NH = c_.num_heads, btc = BT * C, r = spec_.lora_rank;
    const size_t N = spec_.num_classes, Vp = c_.padded_vocab_size;
    const size_t head_out = N > 0 ? N : Vp;
    residual_.resize((L + 1) * btc);
    ln1_.resize(L * btc);
    ln1_mean_.resize(L * BT);
    ln1_rstd_.resize(L * BT);
    qkv_.resize(L * 3 * btc);
    atty_.resize(L * btc);
    lse_.resize(L * BT * NH);
    residual2_.resize(L * btc);
    ln2_.resize(L * btc);
    ln2_mean_.resize(L * BT);
    ln2_rstd_.resize(L * BT);
    fch_.resize(L * 4 * btc);
    fch_gelu_.resize(L * 4 * btc);
    branch_.resize(btc);
    lnf_.resize(btc);
    lnf_mean_.resize(BT);
    lnf_rstd_.resize(BT);
    if (N > 0) {
      last_.resize(BT * C);  // B ≤ BT: sized by BT so a larger B with a smaller T still fits
      dlast_.resize(BT * C);
      cls_logits_.resize(BT * N);
      dlogits_.resize(BT * N);
    } else {
      lm_logits_.resize(BT * Vp);
    }
    losses_.resize(BT);
    targets_.resize(BT);
    inputs_.resize(BT);
    dres_.resize(btc);
    dln_.resize(btc);
    datty_.resize(btc);
    dqkv_.resize(3 * btc);
    dfch_.resize(4 * btc);
    dfch_gelu_.resize(4 * btc);
    if (r > 0) {
      lora_h_.resize((L * llm::kNumBlockLinears + 1) * BT * r);
      lora_tmp_.resize(BT * std::max(4 * C, head_out));
      lora_dh_.resize(BT * r);
      lora_dx_.resize(BT * 4 * C);
    }
    valid_.resize(1);
    mean_loss_.resize(1);
    mm_scratch_.resize(std::max(kern::matmul_backward_scratch_floats((int)BT, (int)std::max(4 * C, head_out)),
                                kern::matmul_backward_scratch_floats((int)BT, (int)(4 * C))));
    ln_scratch_.resize(kern::layernorm_backward_scratch_floats((int)BT, (int)C));
    att_scratch_.resize(BT * NH);
    enc_scratch_.resize(kern::encoder_backward_scratch_ints(1, (int)BT));
    cap_ = BT;
  }

  // host fp32 -> device floatX (round to nearest) and, in bf16, the fp32 master copy
  static void upload(DeviceArray<floatX>& dst, DeviceArray<float>* master, const std::vector<float>& src) {
    dst.resize(src.size());
    if (src.empty()) return;
    std::vector<floatX> tmp(src.size());
    for (size_t i = 0; i < src.size(); i++) tmp[i] = kern::from_float<floatX>(src[i]);
    CUDA_CHECK(cudaMemcpy(dst.get(), tmp.data(), tmp.size() * sizeof(floatX), cudaMemcpyHostToDevice));
    if (master) {
      master->resize(src.size());
      CUDA_CHECK(cudaMemcpy(master->get(), src.data(), src.size() * sizeof(float), cudaMemcpyHostToDevice));
    }
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
  size_t n_ = 0, head_b_at_ = 0, lora_at_ = 0, cap_ = 0;
  int B_ = 0, T_ = 0;
  bool any_base_ = false, classify_ = false, have_targets_ = false;
  AttentionPath attention_ = AttentionPath::kPortable;
  std::array<size_t, llm::kNumParamTensors> off_{}, size_{};
  std::vector<size_t> lora_off_;
  std::vector<int> lora_in_;
  DeviceArray<floatX> params_, grads_, extra_, extra_grads_, dummy_ln_;
  DeviceArray<float> master_, m_, v_, extra_master_, extra_m_, extra_v_;
  // activations (stacked per layer) and their gradients (one layer's worth)
  DeviceArray<floatX> residual_, ln1_, qkv_, atty_, residual2_, ln2_, fch_, fch_gelu_, branch_, lnf_, last_, dlast_,
      cls_logits_, dlogits_, lm_logits_, dres_, dln_, datty_, dqkv_, dfch_, dfch_gelu_, lora_h_, lora_tmp_, lora_dh_,
      lora_dx_;
  DeviceArray<float> ln1_mean_, ln1_rstd_, ln2_mean_, ln2_rstd_, lnf_mean_, lnf_rstd_, lse_, losses_, mean_loss_,
      mm_scratch_, ln_scratch_, att_scratch_;
  DeviceArray<int> inputs_, targets_, valid_, enc_scratch_;
  std::vector<int> inputs_host_;
  std::vector<float> logits_host_;  // (B,N) class logits of the last forward_classify
};

// The fine-tuning subcommands of train_gpt2cu: gpt2_cpu's flags (cpu/finetune_main.h) plus --precision bf16|fp32
// and --attention auto|flash|cudnn|portable (the chosen path is printed on stderr: stdout stays gpt2_cpu's).
// cmd: finetune-classify, classify or finetune-instruct (argv[0]). check_device runs before any device allocation.
inline int finetune_main(const std::string& cmd, int argc, char** argv, const std::function<void()>& check_device) {
  std::string precision = "bf16", attention = "auto";
  llm::FinetuneProgram prog;
  prog.name = "train_gpt2cu";
  prog.extra_options = [&](CLI::App& app) {
    app.add_option("--precision", precision, "bf16 (weights, activations, gradients; fp32 master + AdamW) or fp32")
        ->check(CLI::IsMember({"bf16", "fp32"}))
        ->capture_default_str();
    // checked when the model is made (llm::Error, exit 2), not by CLI11: the driver's parse errors exit otherwise
    app.add_option("--attention", attention, "auto, flash, cudnn or portable (README: --attention)")
        ->capture_default_str();
  };
  prog.make_backend = [&](const GPT2Config& c, std::vector<float>&& params,
                          const llm::FinetuneSpec& spec) -> std::unique_ptr<llm::FinetuneBackend> {
    const AttentionPath requested = parse_attention_path(attention);
    check_device();
    auto pick = [&](auto model) -> std::unique_ptr<llm::FinetuneBackend> {
      const AttentionPath chosen = model->set_attention(requested);
      std::fprintf(stderr, "train_gpt2cu: attention %s\n", attention_choice(chosen, requested).c_str());
      return model;
    };
    if (precision == "fp32") return pick(std::make_unique<FinetuneGPU<float>>(c, std::move(params), spec));
    return pick(std::make_unique<FinetuneGPU<__nv_bfloat16>>(c, std::move(params), spec));
  };
  prog.make_generator = [&](const GPT2Config& c, std::vector<float>&& params) -> std::unique_ptr<llm::LogitsModel> {
    const AttentionPath requested = parse_attention_path(attention);
    if (precision == "fp32") {
      auto g = std::make_unique<GenerateModel<float>>(c, params, true);
      g->set_attention(requested);
      return g;
    }
    auto g = std::make_unique<GenerateModel<__nv_bfloat16>>(c, params, true);
    g->set_attention(requested);
    return g;
  };
  if (cmd == "finetune-classify") return llm::finetune_classify_main(argc, argv, prog);
  if (cmd == "classify") return llm::classify_main(argc, argv, prog);
  return llm::finetune_instruct_main(argc, argv, prog);
}

}  // namespace gpu
