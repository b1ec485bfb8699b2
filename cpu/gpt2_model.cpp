// gpt2_model.cpp — forward/backward of the reference GPT-2 built from cpu/ops.h.
#include "cpu/gpt2_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "cpu/ops.h"
#include "host/error.h"
#include "host/gpt2_init.h"

namespace llm {

namespace {

void fill_zero(std::vector<float>& v) { std::fill(v.begin(), v.end(), 0.0f); }

}  // namespace

namespace {
void check_config(const GPT2Config& c) {
  if (c.channels <= 0 || c.num_layers <= 0 || c.num_heads <= 0 || c.max_seq_len <= 0 || c.vocab_size <= 0)
    fail("model config: sizes must be positive (C=", c.channels, " L=", c.num_layers, " NH=", c.num_heads,
         " maxT=", c.max_seq_len, " V=", c.vocab_size, ")");
  if (c.channels % c.num_heads != 0) fail("model config: channels ", c.channels, " not divisible by heads ", c.num_heads);
  if (c.padded_vocab_size < c.vocab_size)
    fail("model config: padded vocab ", c.padded_vocab_size, " < vocab ", c.vocab_size);
  if (!(c.dropout >= 0.0f && c.dropout < 1.0f)) fail("model config: dropout ", c.dropout, " outside [0,1)");
}
}  // namespace

GPT2Model::GPT2Model(const GPT2Config& c) : config_(c) {
  check_config(c);
  sizes_ = param_sizes(c);
  offsets_ = param_offsets(c);
  params_.assign(num_parameters(c), 0.0f);
}

GPT2Model::GPT2Model(const GPT2Config& c, std::vector<float> params) : config_(c), params_(std::move(params)) {
  check_config(c);
  if (params_.size() != num_parameters(c))
    fail("model: ", params_.size(), " parameters given, the config needs ", num_parameters(c));
  sizes_ = param_sizes(c);
  offsets_ = param_offsets(c);
}

void GPT2Model::init_gpt2(uint64_t seed) { init_gpt2_params(config_, seed, params_.data()); }

void GPT2Model::init_book(uint64_t seed) { init_book_params(config_, seed, params_.data()); }

void GPT2Model::allocate_activations(int B, int T) {
  if (B == B_ && T == T_) return;
  const size_t L = config_.num_layers, C = config_.channels, NH = config_.num_heads;
  const size_t BT = (size_t)B * T;
  Activations& a = acts_;
  a.encoded.assign(BT * C, 0);
  a.residual.assign((L + 1) * BT * C, 0);
  a.ln1.assign(L * BT * C, 0);
  a.ln1_mean.assign(L * BT, 0);
  a.ln1_rstd.assign(L * BT, 0);
  a.qkv.assign(L * BT * 3 * C, 0);
  a.att.assign(L * B * NH * T * T, 0);
  a.atty.assign(L * BT * C, 0);
  a.attproj.assign(L * BT * C, 0);
  a.residual2.assign(L * BT * C, 0);
  a.ln2.assign(L * BT * C, 0);
  a.ln2_mean.assign(L * BT, 0);
  a.ln2_rstd.assign(L * BT, 0);
  a.fch.assign(L * BT * 4 * C, 0);
  a.fch_gelu.assign(L * BT * 4 * C, 0);
  a.fcproj.assign(L * BT * C, 0);
  a.lnf.assign(BT * C, 0);
  a.lnf_mean.assign(BT, 0);
  a.lnf_rstd.assign(BT, 0);
  a.logits.clear();  // (B,T,Vp) buffers: allocated by the LM head (a classification head never needs them)
  a.probs.clear();
  a.losses.clear();
  a.scratch.assign(BT * C, 0);
  lora_h_.assign(lora_.rank ? (L * kNumBlockLinears + 1) * BT * lora_.rank : 0, 0);
  dacts_ = ActGrads{};  // re-sized by backward() on demand
  B_ = B;
  T_ = T;
}

void GPT2Model::allocate_act_grads() {
  ActGrads& d = dacts_;
  const size_t BT = (size_t)B_ * T_, C = config_.channels;
  if (d.dres.size() == BT * C) return;
  for (auto* v : {&d.dlnf, &d.dres, &d.dres2, &d.dx, &d.dln, &d.datty, &d.dattproj, &d.dfcproj, &d.dencoded})
    v->assign(BT * C, 0);
  d.dqkv.assign(BT * 3 * C, 0);
  d.dfch.assign(BT * 4 * C, 0);
  d.dfch_gelu.assign(BT * 4 * C, 0);
  d.frozen_ln.assign(2 * C, 0);
}

DropoutSpec GPT2Model::drop_spec(int layer, DropoutSite site) const {
  DropoutSpec d;
  d.p = flags_.training ? config_.dropout : 0.0f;
  d.seed = flags_.dropout_seed;
  d.stream = dropout_stream(layer, site);
  return d;
}

// ---- the fine-tuning hooks -------------------------------------------------------------------------------

void GPT2Model::set_finetune(const FinetuneSpec& spec, LoraAdapters lora) {
  finetune_ = spec;
  lora_ = std::move(lora);
  B_ = T_ = 0;  // the adapters' saved activations change shape
  std::vector<float>().swap(grads_);
  grads_zero_pending_ = false;
}

bool GPT2Model::trainable(ParamTensor k, int layer) const {
  return !finetune_ || finetune_tensor_trainable(config_, *finetune_, k, layer);
}

bool GPT2Model::any_trainable() const {
  for (int k = 0; k < kNumParamTensors; k++)
    if (trainable((ParamTensor)k, config_.num_layers - 1) || trainable((ParamTensor)k, 0)) return true;
  return false;
}

int GPT2Model::lowest_backprop_block() const {
  if (!finetune_ || finetune_->lora_rank > 0 || finetune_->train_embeddings) return 0;
  return finetune_->train_from_layer;  // nothing below it needs a gradient
}

float* GPT2Model::grad_or_null(ParamTensor k, int layer, size_t per_layer) {
  if (grads_.empty() || sizes_[k] == 0 || !trainable(k, layer)) return nullptr;
  return grads_.data() + offsets_[k] + (size_t)layer * per_layer;
}

float* GPT2Model::ln_grad(ParamTensor k, int layer) {
  float* g = grad_or_null(k, layer, config_.channels);
  const bool bias = k == kLn1b || k == kLn2b || k == kLnfb;
  return g ? g : dacts_.frozen_ln.data() + (bias ? config_.channels : 0);  // a frozen one's gradient is dropped
}

void GPT2Model::attach_lora(Linear& lin, int slot) {
  if (lora_.rank == 0) return;
  lin.lora = lora_.w.data() + lora_.off[slot];
  lin.lora_grad = lora_.grad.size() == lora_.w.size() ? lora_.grad.data() + lora_.off[slot] : nullptr;
  lin.rank = lora_.rank;
  lin.scale = lora_.scale;
}

float* GPT2Model::lora_h(int layer, int kind) {
  if (lora_h_.empty()) return nullptr;
  return lora_h_.data() + ((size_t)layer * kNumBlockLinears + kind) * B_ * T_ * lora_.rank;
}

Linear GPT2Model::block_linear(int l, int kind) {
  const int C = config_.channels;
  static constexpr ParamTensor kW[kNumBlockLinears] = {kQkvw, kAttprojw, kFcw, kFcprojw};
  static constexpr ParamTensor kB[kNumBlockLinears] = {kQkvb, kAttprojb, kFcb, kFcprojb};
  const int ins[kNumBlockLinears] = {C, C, C, 4 * C}, outs[kNumBlockLinears] = {3 * C, C, 4 * C, C};
  Linear lin;
  lin.in = ins[kind];
  lin.out = outs[kind];
  const size_t wn = (size_t)lin.in * lin.out;
  lin.w = param(kW[kind]) + l * wn;
  lin.b = sizes_[kB[kind]] ? param(kB[kind]) + (size_t)l * lin.out : nullptr;
  lin.dw = grad_or_null(kW[kind], l, wn);
  lin.db = lin.b ? grad_or_null(kB[kind], l, lin.out) : nullptr;
  attach_lora(lin, l * kNumBlockLinears + kind);
  return lin;
}

Linear GPT2Model::head_linear() {
  Linear lin;
  lin.w = head_weight();
  lin.in = config_.channels;
  lin.out = config_.padded_vocab_size;
  const ParamTensor k = config_.tied_head ? kWte : kLmHead;
  if (!finetune_ || finetune_->train_head) lin.dw = grad_or_null(k, 0, 0);
  attach_lora(lin, config_.num_layers * kNumBlockLinears);
  return lin;
}

// ---- forward ---------------------------------------------------------------------------------------------

void GPT2Model::forward_trunk(const int* inputs, int B, int T, const TrainFlags& flags) {
  const int L = config_.num_layers, C = config_.channels, NH = config_.num_heads, V = config_.vocab_size;
  if (B <= 0 || T <= 0) fail("forward: batch size ", B, " and sequence length ", T, " must be positive");
  if (T > config_.max_seq_len) fail("forward: sequence length ", T, " exceeds the model context ", config_.max_seq_len);
  const size_t BT = (size_t)B * T;
  for (size_t i = 0; i < BT; i++)
    if (inputs[i] < 0 || inputs[i] >= V) fail("forward: input token ", inputs[i], " at position ", i, " not in [0,", V, ")");
  allocate_activations(B, T);
  have_targets_ = false;  // forward() sets it after the LM head
  flags_ = flags;
  inputs_.assign(inputs, inputs + BT);
  Activations& a = acts_;

  // embedding, then x_0 = dropout(encoded)
  ref::encoder_forward(a.encoded.data(), inputs, param(kWte), param(kWpe), B, T, C);
  ref::dropout_forward(a.residual.data(), a.encoded.data(), BT * C, drop_spec(0, kDropEmbed));

  const size_t C3 = 3 * (size_t)C, C4 = 4 * (size_t)C;
  for (int l = 0; l < L; l++) {
    const float* x = a.residual.data() + l * BT * C;
    float* ln1 = a.ln1.data() + l * BT * C;
    float* qkv = a.qkv.data() + l * BT * C3;
    float* att = a.att.data() + (size_t)l * B * NH * T * T;
    float* atty = a.atty.data() + l * BT * C;
    float* attproj = a.attproj.data() + l * BT * C;
    float* residual2 = a.residual2.data() + l * BT * C;
    float* ln2 = a.ln2.data() + l * BT * C;
    float* fch = a.fch.data() + l * BT * C4;
    float* fch_gelu = a.fch_gelu.data() + l * BT * C4;
    float* fcproj = a.fcproj.data() + l * BT * C;
    float* x_next = a.residual.data() + (l + 1) * BT * C;

    // attention branch: residual2 = x + drop(proj(attn(ln1(x))))
    ref::layernorm_forward(ln1, a.ln1_mean.data() + l * BT, a.ln1_rstd.data() + l * BT, x, param(kLn1w) + l * C,
                           param(kLn1b) + l * C, (int)BT, C);
    linear_forward(qkv, ln1, (int)BT, block_linear(l, kLinQkv), lora_h(l, kLinQkv));
    ref::attention_forward(atty, att, qkv, B, T, C, NH, drop_spec(l, kDropAttn));
    linear_forward(attproj, atty, (int)BT, block_linear(l, kLinAttproj), lora_h(l, kLinAttproj));
    residual_add(residual2, x, attproj, drop_spec(l, kDropResidAttn));
    // MLP branch: x_next = residual2 + drop(fcproj(gelu(fc(ln2(residual2)))))
    ref::layernorm_forward(ln2, a.ln2_mean.data() + l * BT, a.ln2_rstd.data() + l * BT, residual2,
                           param(kLn2w) + l * C, param(kLn2b) + l * C, (int)BT, C);
    linear_forward(fch, ln2, (int)BT, block_linear(l, kLinFc), lora_h(l, kLinFc));
    ref::gelu_forward(fch_gelu, fch, BT * C4);
    linear_forward(fcproj, fch_gelu, (int)BT, block_linear(l, kLinFcproj), lora_h(l, kLinFcproj));
    residual_add(x_next, residual2, fcproj, drop_spec(l, kDropResidMlp));
  }
  const float* x_last = a.residual.data() + (size_t)L * BT * C;
  ref::layernorm_forward(a.lnf.data(), a.lnf_mean.data(), a.lnf_rstd.data(), x_last, param(kLnfw), param(kLnfb),
                         (int)BT, C);
}

// out = x + drop(branch); without dropout (p = 0: eval, or none configured) the branch is added directly
void GPT2Model::residual_add(float* out, const float* x, const float* branch, const DropoutSpec& drop) {
  const size_t n = (size_t)B_ * T_ * config_.channels;
  if (drop.p > 0.0f) {
    ref::dropout_forward(acts_.scratch.data(), branch, n, drop);
    branch = acts_.scratch.data();
  }
  ref::residual_forward(out, x, branch, n);
}

float GPT2Model::forward(const int* inputs, const int* targets, int B, int T, const TrainFlags& flags) {
  const int V = config_.vocab_size, Vp = config_.padded_vocab_size;
  const size_t BT = (size_t)B * T;
  if (targets && B > 0 && T > 0)
    for (size_t i = 0; i < BT; i++)
      if (targets[i] != -100 && (targets[i] < 0 || targets[i] >= V))
        fail("forward: target ", targets[i], " at position ", i, " not in [0,", V, ") or -100");
  forward_trunk(inputs, B, T, flags);
  have_targets_ = targets != nullptr;
  if (targets) targets_.assign(targets, targets + BT); else targets_.clear();

  // logits = lnf · headᵀ, softmax (+ cross-entropy)
  Activations& a = acts_;
  if (a.logits.size() != BT * Vp) {
    a.logits.assign(BT * Vp, 0);
    a.probs.assign(BT * Vp, 0);
    a.losses.assign(BT, 0);
  }
  linear_forward(a.logits.data(), a.lnf.data(), (int)BT, head_linear(), lora_h(config_.num_layers, 0));
  std::vector<int> no_targets;
  const int* tg = targets;
  if (!tg) {  // probabilities are still wanted (sampling); every row "ignored" for the loss
    no_targets.assign(BT, -100);
    tg = no_targets.data();
  }
  const float loss = ref::softmax_crossentropy_forward(a.losses.data(), a.probs.data(), a.logits.data(), tg, (int)BT,
                                                       V, Vp);
  num_valid_ = 0;
  if (targets)
    for (size_t i = 0; i < BT; i++) num_valid_ += targets[i] != -100;
  mean_loss_ = targets ? loss : -1.0f;
  return mean_loss_;
}

// ---- backward --------------------------------------------------------------------------------------------

void GPT2Model::zero_grad() {
  if (lora_.rank) lora_.grad.assign(lora_.w.size(), 0.0f);
  if (!any_trainable()) return;  // fine-tuning with every base tensor frozen: no gradient memory at all
  if (grads_.size() != params_.size()) grads_.assign(params_.size(), 0.0f);
  else grads_zero_pending_ = true;  // cleared by the next backward() or accessor (see gpt2_model.h)
}

void GPT2Model::materialize_zero() const {
  if (!grads_zero_pending_) return;
  grads_zero_pending_ = false;
  float* g = grads_.data();
  const size_t n = grads_.size();
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) g[i] = 0.0f;
}

bool GPT2Model::begin_backward(bool head_gemm_first) {
  if (grads_.size() != params_.size() && any_trainable()) grads_.assign(params_.size(), 0.0f);
  if (lora_.rank && lora_.grad.size() != lora_.w.size()) lora_.grad.assign(lora_.w.size(), 0.0f);
  allocate_act_grads();
  if (!grads_zero_pending_) return true;
  // frozen tensors are not written by the backward, nor is wte by a head GEMM before the trunk: clear everything
  if (finetune_ || !head_gemm_first) {
    materialize_zero();
    return true;
  }
  // After zero_grad(): the weight-gradient GEMMs overwrite their tensors (dW = dYᵀ·X instead of +=), every other
  // gradient tensor is zeroed here. The head's GEMM runs first, so with a tied head the embedding's scatter-add
  // at the end lands on the freshly written wte gradient.
  grads_zero_pending_ = false;
  for (int k = 0; k < kNumParamTensors; k++) {
    const auto t = (ParamTensor)k;
    const bool by_gemm = t == kQkvw || t == kAttprojw || t == kFcw || t == kFcprojw || t == kLmHead ||
                         (t == kWte && config_.tied_head);
    if (!by_gemm) std::fill_n(grads_.data() + offsets_[k], sizes_[k], 0.0f);
  }
  return false;
}

void GPT2Model::backward(float loss_scale) {
  if (!have_targets_) fail("backward: the last forward had no targets");
  const bool acc_w = begin_backward(/*head_gemm_first=*/true);
  const int V = config_.vocab_size, Vp = config_.padded_vocab_size;
  const size_t BT = (size_t)B_ * T_;
  ActGrads& d = dacts_;
  if (d.dlogits.size() != BT * Vp) d.dlogits.assign(BT * Vp, 0);
  // every op accumulates, so each activation-gradient buffer is cleared right before its use (dlogits is
  // written by the loss backward instead: clearing 256×50304 floats costs a full extra pass)
  fill_zero(d.dlnf);
  // loss = loss_scale · mean over valid targets
  const float dloss = num_valid_ > 0 ? loss_scale / num_valid_ : 0.0f;
  ref::softmax_crossentropy_backward(d.dlogits.data(), acts_.probs.data(), targets_.data(), (int)BT, V, Vp, dloss,
                                     /*accumulate=*/false);
  linear_backward(d.dlnf.data(), d.dlogits.data(), acts_.lnf.data(), (int)BT, head_linear(),
                  lora_h(config_.num_layers, 0), acc_w);
  trunk_backward(d.dlnf.data(), acc_w);
}

void GPT2Model::backward_trunk(const float* dlnf) { trunk_backward(dlnf, begin_backward(/*head_gemm_first=*/false)); }

void GPT2Model::trunk_backward(const float* dlnf, bool acc_w) {
  const int L = config_.num_layers, C = config_.channels, NH = config_.num_heads, B = B_, T = T_;
  const size_t BT = (size_t)B * T, C3 = 3 * (size_t)C, C4 = 4 * (size_t)C;
  const int low = lowest_backprop_block();
  if (low >= L && !trainable(kLnfw)) return;  // only a head trains
  Activations& a = acts_;
  ActGrads& d = dacts_;
  fill_zero(d.dres);
  const float* x_last = a.residual.data() + (size_t)L * BT * C;
  ref::layernorm_backward(d.dres.data(), ln_grad(kLnfw, 0), ln_grad(kLnfb, 0), dlnf, x_last, param(kLnfw),
                          a.lnf_mean.data(), a.lnf_rstd.data(), (int)BT, C);

  for (int l = L - 1; l >= low; l--) {
    const float* x = a.residual.data() + l * BT * C;
    const float* ln1 = a.ln1.data() + l * BT * C;
    const float* qkv = a.qkv.data() + l * BT * C3;
    const float* att = a.att.data() + (size_t)l * B * NH * T * T;
    const float* atty = a.atty.data() + l * BT * C;
    const float* residual2 = a.residual2.data() + l * BT * C;
    const float* ln2 = a.ln2.data() + l * BT * C;
    const float* fch = a.fch.data() + l * BT * C4;
    const float* fch_gelu = a.fch_gelu.data() + l * BT * C4;

    // d.dres holds dL/dx_{l+1}. MLP branch: x_{l+1} = residual2 + drop(fcproj)
    const float* dfcproj = residual_grad(d.dres2, d.dfcproj, d.dres, drop_spec(l, kDropResidMlp));
    fill_zero(d.dfch_gelu);
    fill_zero(d.dfch);
    fill_zero(d.dln);
    linear_backward(d.dfch_gelu.data(), dfcproj, fch_gelu, (int)BT, block_linear(l, kLinFcproj),
                    lora_h(l, kLinFcproj), acc_w);
    ref::gelu_backward(d.dfch.data(), fch, d.dfch_gelu.data(), BT * C4);
    linear_backward(d.dln.data(), d.dfch.data(), ln2, (int)BT, block_linear(l, kLinFc), lora_h(l, kLinFc), acc_w);
    ref::layernorm_backward(d.dres2.data(), ln_grad(kLn2w, l), ln_grad(kLn2b, l), d.dln.data(), residual2,
                            param(kLn2w) + l * C, a.ln2_mean.data() + l * BT, a.ln2_rstd.data() + l * BT, (int)BT, C);

    // attention branch: residual2 = x_l + drop(attproj)
    const float* dattproj = residual_grad(d.dx, d.dattproj, d.dres2, drop_spec(l, kDropResidAttn));
    fill_zero(d.datty);
    fill_zero(d.dqkv);
    fill_zero(d.dln);
    linear_backward(d.datty.data(), dattproj, atty, (int)BT, block_linear(l, kLinAttproj), lora_h(l, kLinAttproj),
                    acc_w);
    ref::attention_backward(d.dqkv.data(), d.datty.data(), qkv, att, B, T, C, NH, drop_spec(l, kDropAttn));
    linear_backward(d.dln.data(), d.dqkv.data(), ln1, (int)BT, block_linear(l, kLinQkv), lora_h(l, kLinQkv), acc_w);
    ref::layernorm_backward(d.dx.data(), ln_grad(kLn1w, l), ln_grad(kLn1b, l), d.dln.data(), x, param(kLn1w) + l * C,
                            a.ln1_mean.data() + l * BT, a.ln1_rstd.data() + l * BT, (int)BT, C);
    std::swap(d.dres, d.dx);  // dL/dx_l becomes the incoming gradient of the layer below
  }
  if (!trainable(kWpe)) return;  // frozen embeddings: nothing below the blocks needs a gradient

  // x_0 = drop(encoded), encoded = wte[inp] + wpe[t]
  fill_zero(d.dencoded);
  ref::dropout_backward(d.dencoded.data(), d.dres.data(), BT * C, drop_spec(0, kDropEmbed));
  ref::encoder_backward(grads_.data() + offsets_[kWte], grads_.data() + offsets_[kWpe], d.dencoded.data(),
                        inputs_.data(), B, T, C);
}

// Gradients through out = x + drop(branch) given dout: dx = dout (copied into dx), and the branch's gradient,
// returned: dout itself without dropout (p = 0: no clear + copy), else dropout_backward(dout) in dbranch.
const float* GPT2Model::residual_grad(std::vector<float>& dx, std::vector<float>& dbranch,
                                      const std::vector<float>& dout, const DropoutSpec& drop) {
  std::copy(dout.begin(), dout.end(), dx.begin());
  if (drop.p == 0.0f) return dout.data();
  fill_zero(dbranch);
  ref::dropout_backward(dbranch.data(), dout.data(), dout.size(), drop);
  return dbranch.data();
}

}  // namespace llm
