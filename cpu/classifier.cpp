// classifier.cpp — see classifier.h.
#include "cpu/classifier.h"

#include <algorithm>

#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "host/error.h"

namespace llm {

namespace {

void zero(std::vector<float>& v) { std::fill(v.begin(), v.end(), 0.0f); }

// dweight (OC,C) += doutᵀ (OC,N) · inp (N,C)
void weight_grad(float* dweight, const float* dout, const float* inp, int N, int C, int OC) {
  ref::gemm_accumulate(dweight, C, ref::MatView{dout, 1, (size_t)OC}, ref::MatView{inp, (size_t)C, 1}, OC, C, N);
}
// dinp (N,C) += dout (N,OC) · weight (OC,C)
void input_grad(float* dinp, const float* dout, const float* weight, int N, int C, int OC) {
  ref::gemm_accumulate(dinp, C, ref::MatView{dout, (size_t)OC, 1}, ref::MatView{weight, (size_t)C, 1}, N, C, OC);
}

}  // namespace

FinetuneGPT2::FinetuneGPT2(const GPT2Config& config, std::vector<float> params, const FinetuneSpec& spec)
    : c_(config), spec_(spec), params_(std::move(params)) {
  if (params_.size() != num_parameters(c_))
    fail("fine-tune: ", params_.size(), " parameters given, the config needs ", num_parameters(c_));
  spec_ = finetune_check_spec(c_, spec_);
  off_ = param_offsets(c_);
  size_ = param_sizes(c_);
  FinetuneInit f = finetune_init(c_, spec_);
  head_w_ = std::move(f.head_w);
  head_b_ = std::move(f.head_b);
  lora_ = std::move(f.lora);
  lora_off_ = std::move(f.lora_off);
  lora_in_ = std::move(f.lora_in);
  lora_out_ = std::move(f.lora_out);
}

bool FinetuneGPT2::tensor_trainable(ParamTensor k, int layer) const {
  return finetune_tensor_trainable(c_, spec_, k, layer);
}

const float* FinetuneGPT2::base_grad(ParamTensor k) const {
  if (grads_.empty() || size_[k] == 0) return nullptr;
  const bool per_layer = k != kWte && k != kWpe && k != kLnfw && k != kLnfb && k != kLmHead;
  const bool any = per_layer ? tensor_trainable(k, c_.num_layers - 1) : tensor_trainable(k);
  return any ? grads_.data() + off_[k] : nullptr;
}

size_t FinetuneGPT2::num_trainable() const {
  size_t n = lora_.size() + (head_trainable() ? head_w_.size() + head_b_.size() : 0);
  for (int k = 0; k < kNumParamTensors; k++) {
    const auto t = (ParamTensor)k;
    const bool per_layer = t != kWte && t != kWpe && t != kLnfw && t != kLnfb && t != kLmHead;
    if (!per_layer) { n += tensor_trainable(t) ? size_[k] : 0; continue; }
    for (int l = 0; l < c_.num_layers; l++) n += tensor_trainable(t, l) ? size_[k] / c_.num_layers : 0;
  }
  return n;
}

float* FinetuneGPT2::lora_a(int layer, int kind) {
  if (lora_off_.empty()) fail("LoRA is not enabled");
  return lora_.data() + lora_off_[(size_t)layer * kNumBlockLinears + kind];
}
float* FinetuneGPT2::lora_b(int layer, int kind) {
  const size_t s = (size_t)layer * kNumBlockLinears + kind;
  return lora_a(layer, kind) + (size_t)spec_.lora_rank * lora_in_[s];
}
const float* FinetuneGPT2::lora_a_grad(int layer, int kind) const {
  if (lora_grads_.empty()) return nullptr;
  return lora_grads_.data() + lora_off_[(size_t)layer * kNumBlockLinears + kind];
}
const float* FinetuneGPT2::lora_b_grad(int layer, int kind) const {
  const size_t s = (size_t)layer * kNumBlockLinears + kind;
  const float* a = lora_a_grad(layer, kind);
  return a ? a + (size_t)spec_.lora_rank * lora_in_[s] : nullptr;
}

FinetuneGPT2::Lin FinetuneGPT2::block_linear(int l, int kind) {
  const size_t C = c_.channels;
  float* g = grads_.empty() ? nullptr : grads_.data();
  auto pick = [&](ParamTensor w, ParamTensor b, size_t wn, size_t bn, int in, int out) {
    Lin lin;
    lin.w = params_.data() + off_[w] + l * wn;
    lin.b = size_[b] ? params_.data() + off_[b] + l * bn : nullptr;
    lin.dw = g && tensor_trainable(w, l) ? g + off_[w] + l * wn : nullptr;
    lin.db = g && lin.b && tensor_trainable(b, l) ? g + off_[b] + l * bn : nullptr;
    lin.in = in;
    lin.out = out;
    lin.lora = lora_off_.empty() ? -1 : l * kNumBlockLinears + kind;
    return lin;
  };
  switch (kind) {
    case kLinQkv: return pick(kQkvw, kQkvb, 3 * C * C, 3 * C, C, 3 * C);
    case kLinAttproj: return pick(kAttprojw, kAttprojb, C * C, C, C, C);
    case kLinFc: return pick(kFcw, kFcb, 4 * C * C, 4 * C, C, 4 * C);
    default: return pick(kFcprojw, kFcprojb, 4 * C * C, C, 4 * C, C);
  }
}

FinetuneGPT2::Lin FinetuneGPT2::head_linear() {
  Lin lin;
  lin.in = c_.channels;
  lin.lora = lora_off_.empty() ? -1 : c_.num_layers * kNumBlockLinears;
  if (spec_.num_classes > 0) {
    lin.w = head_w_.data();
    lin.b = head_b_.data();
    lin.dw = head_trainable() && !head_dw_.empty() ? head_dw_.data() : nullptr;
    lin.db = head_trainable() && !head_db_.empty() ? head_db_.data() : nullptr;
    lin.out = spec_.num_classes;
  } else {
    const ParamTensor k = c_.tied_head ? kWte : kLmHead;
    lin.w = params_.data() + off_[k];
    lin.b = nullptr;
    lin.dw = !grads_.empty() && tensor_trainable(k) && spec_.train_head ? grads_.data() + off_[k] : nullptr;
    lin.db = nullptr;
    lin.out = c_.padded_vocab_size;
  }
  return lin;
}

// out (N,out) = x (N,in) · Wᵀ + b  [+ (alpha/r) · (x·Aᵀ)·Bᵀ, saving h = x·Aᵀ (N,r) for backward]
void FinetuneGPT2::linear_forward(float* out, const float* x, int N, const Lin& L, float* lora_h) {
  ref::matmul_forward(out, x, L.w, L.b, N, L.in, L.out);
  if (L.lora < 0) return;
  const int r = spec_.lora_rank;
  const float s = spec_.lora_alpha / r;
  const float* A = lora_.data() + lora_off_[L.lora];
  const float* Bm = A + (size_t)r * L.in;
  ref::matmul_forward(lora_h, x, A, nullptr, N, L.in, r);
  std::vector<float> tmp((size_t)N * L.out);
  ref::matmul_forward(tmp.data(), lora_h, Bm, nullptr, N, r, L.out);
  for (size_t i = 0; i < tmp.size(); i++) out[i] += s * tmp[i];
}

// Accumulates dx (if non-null), dW/db (if trainable) and the adapter gradients.
void FinetuneGPT2::linear_backward(float* dx, const float* dout, const float* x, int N, const Lin& L,
                                   const float* lora_h) {
  if (L.dw) weight_grad(L.dw, dout, x, N, L.in, L.out);
  if (L.db)
    for (int n = 0; n < N; n++)
      for (int o = 0; o < L.out; o++) L.db[o] += dout[(size_t)n * L.out + o];
  if (dx) input_grad(dx, dout, L.w, N, L.in, L.out);
  if (L.lora < 0) return;
  const int r = spec_.lora_rank;
  const float s = spec_.lora_alpha / r;
  const float* A = lora_.data() + lora_off_[L.lora];
  const float* Bm = A + (size_t)r * L.in;
  float* dA = lora_grads_.data() + lora_off_[L.lora];
  float* dB = dA + (size_t)r * L.in;
  std::vector<float> sd((size_t)N * L.out), dh((size_t)N * r, 0.0f);
  for (size_t i = 0; i < sd.size(); i++) sd[i] = s * dout[i];
  ref::matmul_backward(dh.data(), dB, nullptr, sd.data(), lora_h, Bm, N, r, L.out);  // through B
  ref::matmul_backward(dx, dA, nullptr, dh.data(), x, A, N, L.in, r);                 // through A
}

void FinetuneGPT2::allocate(int B, int T) {
  const size_t L = c_.num_layers, C = c_.channels, NH = c_.num_heads, BT = (size_t)B * T;
  if (B == B_ && T == T_ && !encoded_.empty()) return;
  encoded_.assign(BT * C, 0);
  residual_.assign((L + 1) * BT * C, 0);
  ln1_.assign(L * BT * C, 0);
  ln1_mean_.assign(L * BT, 0);
  ln1_rstd_.assign(L * BT, 0);
  qkv_.assign(L * BT * 3 * C, 0);
  att_.assign(L * B * NH * T * T, 0);
  atty_.assign(L * BT * C, 0);
  attproj_.assign(L * BT * C, 0);
  residual2_.assign(L * BT * C, 0);
  ln2_.assign(L * BT * C, 0);
  ln2_mean_.assign(L * BT, 0);
  ln2_rstd_.assign(L * BT, 0);
  fch_.assign(L * BT * 4 * C, 0);
  fch_gelu_.assign(L * BT * 4 * C, 0);
  fcproj_.assign(L * BT * C, 0);
  lnf_.assign(BT * C, 0);
  lnf_mean_.assign(BT, 0);
  lnf_rstd_.assign(BT, 0);
  lora_h_.assign(lora_off_.empty() ? 0 : (L * kNumBlockLinears + 1) * BT * spec_.lora_rank, 0);
  B_ = B;
  T_ = T;
}

void FinetuneGPT2::forward_trunk(const int* inputs, int B, int T) {
  const int L = c_.num_layers, C = c_.channels, NH = c_.num_heads;
  if (B <= 0 || T <= 0) fail("fine-tune forward: batch ", B, " and length ", T, " must be positive");
  if (T > c_.max_seq_len) fail("fine-tune forward: sequence length ", T, " exceeds the context ", c_.max_seq_len);
  const size_t BT = (size_t)B * T;
  for (size_t i = 0; i < BT; i++)
    if (inputs[i] < 0 || inputs[i] >= c_.vocab_size)
      fail("fine-tune forward: token ", inputs[i], " at position ", i, " not in [0,", c_.vocab_size, ")");
  allocate(B, T);
  inputs_.assign(inputs, inputs + BT);
  const llm::DropoutSpec nodrop{};
  const size_t r = spec_.lora_rank;
  auto h = [&](int l, int kind) { return lora_h_.empty() ? nullptr : lora_h_.data() + ((size_t)l * 4 + kind) * BT * r; };
  ref::encoder_forward(encoded_.data(), inputs, params_.data() + off_[kWte], params_.data() + off_[kWpe], B, T, C);
  std::copy(encoded_.begin(), encoded_.end(), residual_.begin());  // no dropout
  for (int l = 0; l < L; l++) {
    const size_t a = l * BT * C;
    const float* x = residual_.data() + a;
    ref::layernorm_forward(ln1_.data() + a, ln1_mean_.data() + l * BT, ln1_rstd_.data() + l * BT, x,
                           params_.data() + off_[kLn1w] + l * C, params_.data() + off_[kLn1b] + l * C, (int)BT, C);
    linear_forward(qkv_.data() + 3 * a, ln1_.data() + a, (int)BT, block_linear(l, kLinQkv), h(l, kLinQkv));
    ref::attention_forward(atty_.data() + a, att_.data() + (size_t)l * B * NH * T * T, qkv_.data() + 3 * a, B, T, C,
                           NH, nodrop);
    linear_forward(attproj_.data() + a, atty_.data() + a, (int)BT, block_linear(l, kLinAttproj), h(l, kLinAttproj));
    ref::residual_forward(residual2_.data() + a, x, attproj_.data() + a, BT * C);
    ref::layernorm_forward(ln2_.data() + a, ln2_mean_.data() + l * BT, ln2_rstd_.data() + l * BT,
                           residual2_.data() + a, params_.data() + off_[kLn2w] + l * C,
                           params_.data() + off_[kLn2b] + l * C, (int)BT, C);
    linear_forward(fch_.data() + 4 * a, ln2_.data() + a, (int)BT, block_linear(l, kLinFc), h(l, kLinFc));
    ref::gelu_forward(fch_gelu_.data() + 4 * a, fch_.data() + 4 * a, BT * 4 * C);
    linear_forward(fcproj_.data() + a, fch_gelu_.data() + 4 * a, (int)BT, block_linear(l, kLinFcproj),
                   h(l, kLinFcproj));
    ref::residual_forward(residual_.data() + a + BT * C, residual2_.data() + a, fcproj_.data() + a, BT * C);
  }
  ref::layernorm_forward(lnf_.data(), lnf_mean_.data(), lnf_rstd_.data(), residual_.data() + (size_t)L * BT * C,
                         params_.data() + off_[kLnfw], params_.data() + off_[kLnfb], (int)BT, C);
}

float FinetuneGPT2::forward_classify(const int* inputs, const int* labels, int B, int T) {
  if (spec_.num_classes == 0) fail("forward_classify on a model without a classification head");
  const int N = spec_.num_classes, C = c_.channels;
  if (labels)
    for (int b = 0; b < B; b++)
      if (labels[b] < 0 || labels[b] >= N) fail("fine-tune: label ", labels[b], " of row ", b, " not in [0,", N, ")");
  forward_trunk(inputs, B, T);
  classify_ = true;
  last_rows_.resize((size_t)B * C);
  for (int b = 0; b < B; b++)  // the last position sees the whole sequence through causal attention
    std::copy_n(lnf_.data() + ((size_t)b * T + T - 1) * C, C, last_rows_.data() + (size_t)b * C);
  logits_.assign((size_t)B * N, 0);
  probs_.assign((size_t)B * N, 0);
  losses_.assign(B, 0);
  const size_t r = spec_.lora_rank;
  float* hh = lora_h_.empty() ? nullptr : lora_h_.data() + (size_t)c_.num_layers * 4 * B * T * r;
  linear_forward(logits_.data(), last_rows_.data(), B, head_linear(), hh);
  have_targets_ = labels != nullptr;
  targets_.assign(B, -100);
  if (labels) std::copy_n(labels, B, targets_.data());
  const float loss = ref::softmax_crossentropy_forward(losses_.data(), probs_.data(), logits_.data(), targets_.data(),
                                                       B, N, N);
  num_valid_ = labels ? B : 0;
  return labels ? loss : -1.0f;
}

float FinetuneGPT2::forward_lm(const int* inputs, const int* targets, int B, int T) {
  if (spec_.num_classes != 0) fail("forward_lm on a model with a classification head");
  const int V = c_.vocab_size, Vp = c_.padded_vocab_size;
  const size_t BT = (size_t)B * T;
  if (targets)
    for (size_t i = 0; i < BT; i++)
      if (targets[i] != -100 && (targets[i] < 0 || targets[i] >= V))
        fail("fine-tune: target ", targets[i], " at position ", i, " not in [0,", V, ") or -100");
  forward_trunk(inputs, B, T);
  classify_ = false;
  logits_.assign(BT * Vp, 0);
  probs_.assign(BT * Vp, 0);
  losses_.assign(BT, 0);
  const size_t r = spec_.lora_rank;
  float* hh = lora_h_.empty() ? nullptr : lora_h_.data() + (size_t)c_.num_layers * 4 * BT * r;
  linear_forward(logits_.data(), lnf_.data(), (int)BT, head_linear(), hh);
  have_targets_ = targets != nullptr;
  targets_.assign(BT, -100);
  if (targets) std::copy_n(targets, BT, targets_.data());
  const float loss = ref::softmax_crossentropy_forward(losses_.data(), probs_.data(), logits_.data(), targets_.data(),
                                                       (int)BT, V, Vp);
  num_valid_ = 0;
  for (int t : targets_) num_valid_ += t != -100;
  return targets ? loss : -1.0f;
}

int FinetuneGPT2::predict(int b) const {
  const int N = spec_.num_classes;
  const float* row = logits_.data() + (size_t)b * N;
  return (int)(std::max_element(row, row + N) - row);  // first maximum on ties
}

void FinetuneGPT2::zero_grad() {
  bool any_base = false;
  for (int k = 0; k < kNumParamTensors && !any_base; k++)
    any_base = tensor_trainable((ParamTensor)k, c_.num_layers - 1) || tensor_trainable((ParamTensor)k, 0);
  if (any_base) {
    if (grads_.size() != params_.size()) grads_.assign(params_.size(), 0.0f); else zero(grads_);
  }
  if (head_trainable() && spec_.num_classes > 0) {
    head_dw_.assign(head_w_.size(), 0.0f);
    head_db_.assign(head_b_.size(), 0.0f);
  }
  lora_grads_.assign(lora_.size(), 0.0f);
}

int FinetuneGPT2::lowest_backprop_layer() const {
  if (spec_.lora_rank > 0 || spec_.train_embeddings) return 0;
  return spec_.train_from_layer;  // nothing below it needs a gradient
}

void FinetuneGPT2::backward_trunk(const float* dlnf) {
  const int L = c_.num_layers, C = c_.channels, NH = c_.num_heads, B = B_, T = T_;
  const size_t BT = (size_t)B * T;
  const int low = lowest_backprop_layer();
  if (low >= L && !spec_.train_final_ln) return;
  float* g = grads_.empty() ? nullptr : grads_.data();
  std::vector<float> dummy_w(C), dummy_b(C);  // LayerNorm weight grads of frozen LayerNorms are discarded
  auto lng = [&](ParamTensor k, int l, std::vector<float>& dummy) {
    return g && tensor_trainable(k, l) ? g + off_[k] + (size_t)l * C : dummy.data();
  };
  std::vector<float> dres(BT * C, 0.0f), dres2(BT * C), dln(BT * C), datty(BT * C), dattproj(BT * C),
      dqkv(BT * 3 * C), dfch(BT * 4 * C), dfch_gelu(BT * 4 * C);
  const bool lnf_tr = g && spec_.train_final_ln && spec_.lora_rank == 0;
  ref::layernorm_backward(dres.data(), lnf_tr ? g + off_[kLnfw] : dummy_w.data(),
                          lnf_tr ? g + off_[kLnfb] : dummy_b.data(), dlnf, residual_.data() + (size_t)L * BT * C,
                          params_.data() + off_[kLnfw], lnf_mean_.data(), lnf_rstd_.data(), (int)BT, C);
  const llm::DropoutSpec nodrop{};
  const size_t r = spec_.lora_rank;
  auto h = [&](int l, int kind) { return lora_h_.empty() ? nullptr : lora_h_.data() + ((size_t)l * 4 + kind) * BT * r; };
  for (int l = L - 1; l >= low; l--) {
    const size_t a = l * BT * C;
    // MLP branch: x_{l+1} = residual2 + fcproj(gelu(fc(ln2(residual2))))
    dres2 = dres;
    zero(dfch_gelu); zero(dfch); zero(dln);
    linear_backward(dfch_gelu.data(), dres.data(), fch_gelu_.data() + 4 * a, (int)BT, block_linear(l, kLinFcproj),
                    h(l, kLinFcproj));
    ref::gelu_backward(dfch.data(), fch_.data() + 4 * a, dfch_gelu.data(), BT * 4 * C);
    linear_backward(dln.data(), dfch.data(), ln2_.data() + a, (int)BT, block_linear(l, kLinFc), h(l, kLinFc));
    ref::layernorm_backward(dres2.data(), lng(kLn2w, l, dummy_w), lng(kLn2b, l, dummy_b), dln.data(),
                            residual2_.data() + a, params_.data() + off_[kLn2w] + l * C, ln2_mean_.data() + l * BT,
                            ln2_rstd_.data() + l * BT, (int)BT, C);
    // attention branch: residual2 = x_l + attproj(attn(qkv(ln1(x_l))))
    dres = dres2;
    zero(datty); zero(dqkv); zero(dln);
    linear_backward(datty.data(), dres2.data(), atty_.data() + a, (int)BT, block_linear(l, kLinAttproj),
                    h(l, kLinAttproj));
    ref::attention_backward(dqkv.data(), datty.data(), qkv_.data() + 3 * a, att_.data() + (size_t)l * B * NH * T * T,
                            B, T, C, NH, nodrop);
    linear_backward(dln.data(), dqkv.data(), ln1_.data() + a, (int)BT, block_linear(l, kLinQkv), h(l, kLinQkv));
    ref::layernorm_backward(dres.data(), lng(kLn1w, l, dummy_w), lng(kLn1b, l, dummy_b), dln.data(),
                            residual_.data() + a, params_.data() + off_[kLn1w] + l * C, ln1_mean_.data() + l * BT,
                            ln1_rstd_.data() + l * BT, (int)BT, C);
  }
  if (g && spec_.train_embeddings && spec_.lora_rank == 0)
    ref::encoder_backward(g + off_[kWte], g + off_[kWpe], dres.data(), inputs_.data(), B, T, C);
}

void FinetuneGPT2::backward() {
  if (!have_targets_) fail("fine-tune backward: the last forward had no labels/targets");
  if (lora_grads_.size() != lora_.size() ||
      (head_trainable() && spec_.num_classes > 0 && head_dw_.size() != head_w_.size()))
    zero_grad();
  if (grads_.empty()) {  // allocate base gradients on first use when some base tensor trains
    for (int k = 0; k < kNumParamTensors; k++)
      if (tensor_trainable((ParamTensor)k, c_.num_layers - 1)) { grads_.assign(params_.size(), 0.0f); break; }
  }
  const int C = c_.channels, B = B_, T = T_;
  const size_t BT = (size_t)B * T, r = spec_.lora_rank;
  std::vector<float> dlnf(BT * C, 0.0f);
  const float dloss = num_valid_ > 0 ? 1.0f / num_valid_ : 0.0f;
  if (classify_) {
    const int N = spec_.num_classes;
    std::vector<float> dlogits((size_t)B * N, 0.0f), dlast((size_t)B * C, 0.0f);
    ref::softmax_crossentropy_backward(dlogits.data(), probs_.data(), targets_.data(), B, N, N, dloss);
    const float* hh = lora_h_.empty() ? nullptr : lora_h_.data() + (size_t)c_.num_layers * 4 * BT * r;
    linear_backward(dlast.data(), dlogits.data(), last_rows_.data(), B, head_linear(), hh);
    for (int b = 0; b < B; b++)  // only the last position carries gradient
      std::copy_n(dlast.data() + (size_t)b * C, C, dlnf.data() + ((size_t)b * T + T - 1) * C);
  } else {
    const int V = c_.vocab_size, Vp = c_.padded_vocab_size;
    std::vector<float> dlogits(BT * Vp, 0.0f);
    ref::softmax_crossentropy_backward(dlogits.data(), probs_.data(), targets_.data(), (int)BT, V, Vp, dloss);
    const float* hh = lora_h_.empty() ? nullptr : lora_h_.data() + (size_t)c_.num_layers * 4 * BT * r;
    linear_backward(dlnf.data(), dlogits.data(), lnf_.data(), (int)BT, head_linear(), hh);
  }
  backward_trunk(dlnf.data());
}

void FinetuneGPT2::adamw_step(float lr, float wd, int t, float beta1, float beta2, float eps) {
  const int L = c_.num_layers;
  if (!grads_.empty()) {
    if (m_.size() != params_.size()) { m_.assign(params_.size(), 0.0f); v_.assign(params_.size(), 0.0f); }
    for (int k = 0; k < kNumParamTensors; k++) {
      const auto tk = (ParamTensor)k;
      const bool per_layer = tk != kWte && tk != kWpe && tk != kLnfw && tk != kLnfb && tk != kLmHead;
      size_t o = off_[k], n = size_[k];
      if (n == 0) continue;
      if (per_layer) {  // only blocks [from, L)
        const size_t per = n / L;
        const int from = spec_.train_from_layer;
        if (!tensor_trainable(tk, L - 1)) continue;
        o += (size_t)from * per;
        n = (size_t)(L - from) * per;
      } else if (!tensor_trainable(tk)) {
        continue;
      }
      ref::adamw_update(params_.data() + o, grads_.data() + o, m_.data() + o, v_.data() + o, n, lr, beta1, beta2, eps,
                        wd, t);
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
  if (!lora_.empty()) {
    if (lora_m_.size() != lora_.size()) { lora_m_.assign(lora_.size(), 0.0f); lora_v_.assign(lora_.size(), 0.0f); }
    ref::adamw_update(lora_.data(), lora_grads_.data(), lora_m_.data(), lora_v_.data(), lora_.size(), lr, beta1, beta2,
                      eps, wd, t);
  }
}

void FinetuneGPT2::merge_lora() {
  if (lora_off_.empty()) return;
  const int L = c_.num_layers, r = spec_.lora_rank;
  const float s = spec_.lora_alpha / r;
  if (spec_.num_classes == 0 && c_.tied_head) {  // untie: lm_head (the last tensor) starts as a copy of wte
    const size_t vc = size_[kWte];
    c_.tied_head = false;
    params_.insert(params_.end(), params_.begin() + off_[kWte], params_.begin() + off_[kWte] + vc);
    off_ = param_offsets(c_);
    size_ = param_sizes(c_);
    grads_.clear();
    m_.clear();
    v_.clear();
  }
  const int slots = L * kNumBlockLinears + 1;
  for (int sl = 0; sl < slots; sl++) {
    const Lin lin = sl < L * kNumBlockLinears ? block_linear(sl / kNumBlockLinears, sl % kNumBlockLinears)
                                              : head_linear();
    const float* A = lora_.data() + lora_off_[sl];
    std::vector<float> sb(A + (size_t)r * lin.in, A + (size_t)r * lin.in + (size_t)lin.out * r);
    for (float& x : sb) x *= s;
    // W (out,in) += (s·B) (out,r) · A (r,in)
    ref::gemm_accumulate(lin.w, lin.in, ref::MatView{sb.data(), (size_t)r, 1}, ref::MatView{A, (size_t)lin.in, 1},
                         lin.out, lin.in, r);
  }
  lora_.clear(); lora_grads_.clear(); lora_m_.clear(); lora_v_.clear(); lora_off_.clear(); lora_in_.clear();
  lora_out_.clear(); lora_h_.clear();
  encoded_.clear();  // force re-allocation of activations (lora_h_ layout changed)
  spec_.lora_rank = 0;
  spec_.train_head = spec_.train_final_ln = spec_.train_embeddings = false;  // merged models are for inference
  spec_.train_from_layer = L;
}

}  // namespace llm
