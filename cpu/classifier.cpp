// classifier.cpp — see classifier.h.
#include "cpu/classifier.h"

#include <algorithm>

#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "host/error.h"

namespace llm {

namespace {

bool per_layer(ParamTensor k) { return k != kWte && k != kWpe && k != kLnfw && k != kLnfb && k != kLmHead; }

// The spec's adapters as the trunk holds them (finetune_init's values).
LoraAdapters adapters(const FinetuneSpec& spec, FinetuneInit& init) {
  LoraAdapters a;
  if (spec.lora_rank == 0) return a;
  a.rank = spec.lora_rank;
  a.scale = spec.lora_alpha / spec.lora_rank;
  a.w = std::move(init.lora);
  a.off = std::move(init.lora_off);
  a.in = std::move(init.lora_in);
  a.out = std::move(init.lora_out);
  return a;
}

}  // namespace

FinetuneGPT2::FinetuneGPT2(const GPT2Config& config, std::vector<float> params, const FinetuneSpec& spec)
    : spec_(finetune_check_spec(config, spec)), model_(config, std::move(params)) {
  FinetuneInit f = finetune_init(config, spec_);
  head_w_ = std::move(f.head_w);
  head_b_ = std::move(f.head_b);
  model_.set_finetune(spec_, adapters(spec_, f));
}

bool FinetuneGPT2::tensor_trainable(ParamTensor k, int layer) const { return model_.trainable(k, layer); }

bool FinetuneGPT2::any_base_trainable() const {
  for (int k = 0; k < kNumParamTensors; k++)
    if (tensor_trainable((ParamTensor)k, config().num_layers - 1) || tensor_trainable((ParamTensor)k, 0)) return true;
  return false;
}

const float* FinetuneGPT2::base_grad(ParamTensor k) const {
  if (!model_.has_grads() || model_.param_size(k) == 0) return nullptr;
  const bool any = per_layer(k) ? tensor_trainable(k, config().num_layers - 1) : tensor_trainable(k);
  return any ? model_.grad(k) : nullptr;
}

size_t FinetuneGPT2::num_trainable() const {
  const int L = config().num_layers;
  size_t n = model_.lora().w.size() + (head_trainable() ? head_w_.size() + head_b_.size() : 0);
  for (int k = 0; k < kNumParamTensors; k++) {
    const auto t = (ParamTensor)k;
    if (!per_layer(t)) { n += tensor_trainable(t) ? model_.param_size(t) : 0; continue; }
    for (int l = 0; l < L; l++) n += tensor_trainable(t, l) ? model_.param_size(t) / L : 0;
  }
  return n;
}

float* FinetuneGPT2::lora_a(int layer, int kind) {
  LoraAdapters& a = model_.lora();
  if (a.off.empty()) fail("LoRA is not enabled");
  return a.w.data() + a.off[(size_t)layer * kNumBlockLinears + kind];
}
float* FinetuneGPT2::lora_b(int layer, int kind) {
  const size_t s = (size_t)layer * kNumBlockLinears + kind;
  return lora_a(layer, kind) + (size_t)spec_.lora_rank * model_.lora().in[s];
}
const float* FinetuneGPT2::lora_a_grad(int layer, int kind) const {
  const LoraAdapters& a = model_.lora();
  if (a.grad.empty()) return nullptr;
  return a.grad.data() + a.off[(size_t)layer * kNumBlockLinears + kind];
}
const float* FinetuneGPT2::lora_b_grad(int layer, int kind) const {
  const size_t s = (size_t)layer * kNumBlockLinears + kind;
  const float* a = lora_a_grad(layer, kind);
  return a ? a + (size_t)spec_.lora_rank * model_.lora().in[s] : nullptr;
}

Linear FinetuneGPT2::head_linear() {
  Linear lin;
  lin.w = head_w_.data();
  lin.b = head_b_.data();
  lin.dw = head_trainable() && !head_dw_.empty() ? head_dw_.data() : nullptr;
  lin.db = head_trainable() && !head_db_.empty() ? head_db_.data() : nullptr;
  lin.in = config().channels;
  lin.out = spec_.num_classes;
  model_.attach_lora(lin, config().num_layers * kNumBlockLinears);
  return lin;
}

float FinetuneGPT2::forward_classify(const int* inputs, const int* labels, int B, int T) {
  if (spec_.num_classes == 0) fail("forward_classify on a model without a classification head");
  const int N = spec_.num_classes, C = config().channels;
  finetune_check_batch(config(), spec_, inputs, labels, B, T);  // the fine-tuning wording (the trunk's then pass)
  model_.forward_trunk(inputs, B, T);
  classify_ = true;
  B_ = B;
  T_ = T;
  last_rows_.resize((size_t)B * C);
  for (int b = 0; b < B; b++)  // the last position sees the whole sequence through causal attention
    std::copy_n(model_.lnf() + ((size_t)b * T + T - 1) * C, C, last_rows_.data() + (size_t)b * C);
  logits_.assign((size_t)B * N, 0);
  probs_.assign((size_t)B * N, 0);
  losses_.assign(B, 0);
  head_lora_h_.assign((size_t)B * spec_.lora_rank, 0);
  linear_forward(logits_.data(), last_rows_.data(), B, head_linear(), head_lora_h_.data());
  have_targets_ = labels != nullptr;
  labels_.assign(B, -100);
  if (labels) std::copy_n(labels, B, labels_.data());
  const float loss = ref::softmax_crossentropy_forward(losses_.data(), probs_.data(), logits_.data(), labels_.data(),
                                                       B, N, N);
  return labels ? loss : -1.0f;
}

float FinetuneGPT2::forward_lm(const int* inputs, const int* targets, int B, int T) {
  if (spec_.num_classes != 0) fail("forward_lm on a model with a classification head");
  finetune_check_batch(config(), spec_, inputs, targets, B, T);  // the fine-tuning wording (the trunk's then pass)
  classify_ = false;
  have_targets_ = false;
  const float loss = model_.forward(inputs, targets, B, T);  // the LM head over all positions, -100 ignored
  have_targets_ = targets != nullptr;
  return loss;
}

int FinetuneGPT2::predict(int b) const {
  const int N = spec_.num_classes;
  const float* row = logits_.data() + (size_t)b * N;
  return (int)(std::max_element(row, row + N) - row);  // first maximum on ties
}

void FinetuneGPT2::zero_grad() {
  model_.zero_grad();  // base gradients of the trainable tensors, adapter gradients
  if (head_trainable() && spec_.num_classes > 0) {
    head_dw_.assign(head_w_.size(), 0.0f);
    head_db_.assign(head_b_.size(), 0.0f);
  }
}

void FinetuneGPT2::backward() {
  if (!have_targets_) fail("fine-tune backward: the last forward had no labels/targets");
  if (model_.lora().grad.size() != model_.lora().w.size() ||
      (head_trainable() && spec_.num_classes > 0 && head_dw_.size() != head_w_.size()))
    zero_grad();
  if (!classify_) {
    model_.backward();
    return;
  }
  const int C = config().channels, N = spec_.num_classes, B = B_, T = T_;
  std::vector<float> dlogits((size_t)B * N, 0.0f), dlast((size_t)B * C, 0.0f), dlnf((size_t)B * T * C, 0.0f);
  ref::softmax_crossentropy_backward(dlogits.data(), probs_.data(), labels_.data(), B, N, N, 1.0f / B);
  linear_backward(dlast.data(), dlogits.data(), last_rows_.data(), B, head_linear(), head_lora_h_.data());
  for (int b = 0; b < B; b++)  // only the last position carries gradient
    std::copy_n(dlast.data() + (size_t)b * C, C, dlnf.data() + ((size_t)b * T + T - 1) * C);
  model_.backward_trunk(dlnf.data());
}

void FinetuneGPT2::adamw_step(float lr, float wd, int t, float beta1, float beta2, float eps) {
  const int L = config().num_layers;
  float* params = model_.params();
  if (model_.has_grads()) {
    const float* grads = model_.grads();
    if (m_.size() != model_.num_params()) { m_.assign(model_.num_params(), 0.0f); v_.assign(m_.size(), 0.0f); }
    for (int k = 0; k < kNumParamTensors; k++) {
      const auto tk = (ParamTensor)k;
      size_t o = model_.param_offset(tk), n = model_.param_size(tk);
      if (n == 0) continue;
      if (per_layer(tk)) {  // only blocks [from, L)
        const size_t per = n / L;
        const int from = spec_.train_from_layer;
        if (!tensor_trainable(tk, L - 1)) continue;
        o += (size_t)from * per;
        n = (size_t)(L - from) * per;
      } else if (!tensor_trainable(tk)) {
        continue;
      }
      ref::adamw_update(params + o, grads + o, m_.data() + o, v_.data() + o, n, lr, beta1, beta2, eps, wd, t);
    }
  }
  if (head_trainable() && spec_.num_classes > 0) {
    if (head_m_.size() != head_w_.size() + head_b_.size())
      head_m_.assign(head_w_.size() + head_b_.size(), 0.0f), head_v_.assign(head_m_.size(), 0.0f);
    ref::adamw_update(head_w_.data(), head_dw_.data(), head_m_.data(), head_v_.data(), head_w_.size(), lr, beta1,
                      beta2, eps, wd, t);
    ref::adamw_update(head_b_.data(), head_db_.data(), head_m_.data() + head_w_.size(),
                      head_v_.data() + head_w_.size(), head_b_.size(), lr, beta1, beta2, eps, wd, t);
  }
  LoraAdapters& a = model_.lora();
  if (!a.w.empty()) {
    if (lora_m_.size() != a.w.size()) { lora_m_.assign(a.w.size(), 0.0f); lora_v_.assign(a.w.size(), 0.0f); }
    ref::adamw_update(a.w.data(), a.grad.data(), lora_m_.data(), lora_v_.data(), a.w.size(), lr, beta1, beta2, eps,
                      wd, t);
  }
}

void FinetuneGPT2::merge_lora() {
  if (model_.lora().off.empty()) return;
  const LoraAdapters lora = std::move(model_.lora());
  const int L = config().num_layers;
  std::vector<float> params(model_.params(), model_.params() + model_.num_params());
  const GPT2Config merged = finetune_merge_lora(config(), spec_, lora.w.data(), &params, &head_w_);
  if (merged.tied_head != config().tied_head) {  // untied: the model gains an lm_head tensor
    model_ = GPT2Model(merged, std::move(params));
    m_.clear();
    v_.clear();
  } else {
    std::copy(params.begin(), params.end(), model_.params());
  }
  lora_m_.clear();
  lora_v_.clear();
  spec_.lora_rank = 0;
  spec_.train_head = spec_.train_final_ln = spec_.train_embeddings = false;  // merged models are for inference
  spec_.train_from_layer = L;
  model_.set_finetune(spec_, {});
}

}  // namespace llm
