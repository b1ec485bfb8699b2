// gpt2_model.cpp — forward/backward of the reference GPT-2 built from cpu/ops.h.
#include "cpu/gpt2_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "cpu/op_profile.h"
#include "cpu/ops.h"
#include "host/error.h"

namespace llm {

namespace {

// Standard normals from mt19937_64 by Box-Muller on 53-bit uniforms. Written out (instead of
// std::normal_distribution, whose algorithm is implementation-defined) so the init is identical everywhere.
class BoxMuller {
 public:
  explicit BoxMuller(uint64_t seed) : rng_(seed) {}
  double uniform() { return (double)(rng_() >> 40) * 0x1.0p-24; }  // [0, 1)
  double next() {
    if (have_spare_) { have_spare_ = false; return spare_; }
    const double u1 = ((rng_() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]: log(u1) is finite
    const double u2 = (rng_() >> 11) * 0x1.0p-53;          // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1)), th = 2.0 * M_PI * u2;
    spare_ = r * std::sin(th);
    have_spare_ = true;
    return r * std::cos(th);
  }
 private:
  std::mt19937_64 rng_;
  double spare_ = 0.0;
  bool have_spare_ = false;
};

void fill_zero(std::vector<float>& v) { std::fill(v.begin(), v.end(), 0.0f); }

// Runs one statement (an op call), adding its wall time to op_profile() when profiling is on (cpu/op_profile.h).
#define LLM_PROF(op, ...)      \
  do {                         \
    ProfScope prof_scope_(op); \
    __VA_ARGS__;               \
  } while (0)

}  // namespace

GPT2Model::GPT2Model(const GPT2Config& c) : config_(c) {
  if (c.channels <= 0 || c.num_layers <= 0 || c.num_heads <= 0 || c.max_seq_len <= 0 || c.vocab_size <= 0)
    fail("model config: sizes must be positive (C=", c.channels, " L=", c.num_layers, " NH=", c.num_heads,
         " maxT=", c.max_seq_len, " V=", c.vocab_size, ")");
  if (c.channels % c.num_heads != 0) fail("model config: channels ", c.channels, " not divisible by heads ", c.num_heads);
  if (c.padded_vocab_size < c.vocab_size)
    fail("model config: padded vocab ", c.padded_vocab_size, " < vocab ", c.vocab_size);
  if (!(c.dropout >= 0.0f && c.dropout < 1.0f)) fail("model config: dropout ", c.dropout, " outside [0,1)");
  sizes_ = param_sizes(c);
  offsets_ = param_offsets(c);
  params_.assign(num_parameters(c), 0.0f);
}

void GPT2Model::init_gpt2(uint64_t seed) {
  const int L = config_.num_layers, C = config_.channels, V = config_.vocab_size;
  BoxMuller rng(seed);
  const float std_w = 0.02f, std_proj = 0.02f / std::sqrt(2.0f * L);
  fill_zero(params_);
  for (int k = 0; k < kNumParamTensors; k++) {
    const auto t = (ParamTensor)k;
    float* p = param(t);
    size_t n = sizes_[k];
    switch (t) {
      case kWte: case kLmHead: n = n ? (size_t)V * C : 0; [[fallthrough]];  // padded rows stay zero (lm_head may be absent)
      case kWpe: case kQkvw: case kFcw:
        for (size_t i = 0; i < n; i++) p[i] = (float)(rng.next() * std_w);
        break;
      case kAttprojw: case kFcprojw:
        for (size_t i = 0; i < n; i++) p[i] = (float)(rng.next() * std_proj);
        break;
      case kLn1w: case kLn2w: case kLnfw:
        std::fill(p, p + n, 1.0f);
        break;
      default:  // biases
        break;
    }
  }
}

void GPT2Model::init_book(uint64_t seed) {
  const int C = config_.channels, V = config_.vocab_size;
  BoxMuller rng(seed);
  fill_zero(params_);
  for (int k = 0; k < kNumParamTensors; k++) {
    const auto t = (ParamTensor)k;
    float* p = param(t);
    size_t n = sizes_[k];
    const double fan_in = (t == kFcprojw || t == kFcprojb) ? 4.0 * C : (double)C;
    const double bound = 1.0 / std::sqrt(fan_in);
    switch (t) {
      case kWte: case kLmHead: n = n ? (size_t)V * C : 0; [[fallthrough]];  // padded rows stay zero
      case kWpe:
        for (size_t i = 0; i < n; i++) p[i] = (float)rng.next();
        break;
      case kLn1w: case kLn2w: case kLnfw:
        std::fill(p, p + n, 1.0f);
        break;
      case kLn1b: case kLn2b: case kLnfb:
        break;
      default:  // Linear weights and biases
        for (size_t i = 0; i < n; i++) p[i] = (float)((2.0 * rng.uniform() - 1.0) * bound);
        break;
    }
  }
}

void GPT2Model::allocate_activations(int B, int T) {
  if (B == B_ && T == T_) return;
  const size_t L = config_.num_layers, C = config_.channels, NH = config_.num_heads, Vp = config_.padded_vocab_size;
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
  a.logits.assign(BT * Vp, 0);
  a.probs.assign(BT * Vp, 0);
  a.losses.assign(BT, 0);
  a.scratch.assign(BT * C, 0);
  dacts_ = ActGrads{};  // re-sized by backward() on demand
  B_ = B;
  T_ = T;
}

DropoutSpec GPT2Model::drop_spec(int layer, DropoutSite site) const {
  DropoutSpec d;
  d.p = flags_.training ? config_.dropout : 0.0f;
  d.seed = flags_.dropout_seed;
  d.stream = dropout_stream(layer, site);
  return d;
}

float GPT2Model::forward(const int* inputs, const int* targets, int B, int T, const TrainFlags& flags) {
  const int L = config_.num_layers, C = config_.channels, NH = config_.num_heads;
  const int V = config_.vocab_size, Vp = config_.padded_vocab_size;
  if (B <= 0 || T <= 0) fail("forward: batch size ", B, " and sequence length ", T, " must be positive");
  if (T > config_.max_seq_len) fail("forward: sequence length ", T, " exceeds the model context ", config_.max_seq_len);
  const size_t BT = (size_t)B * T;
  for (size_t i = 0; i < BT; i++)
    if (inputs[i] < 0 || inputs[i] >= V) fail("forward: input token ", inputs[i], " at position ", i, " not in [0,", V, ")");
  if (targets)
    for (size_t i = 0; i < BT; i++)
      if (targets[i] != -100 && (targets[i] < 0 || targets[i] >= V))
        fail("forward: target ", targets[i], " at position ", i, " not in [0,", V, ") or -100");

  allocate_activations(B, T);
  flags_ = flags;
  inputs_.assign(inputs, inputs + BT);
  have_targets_ = targets != nullptr;
  if (targets) targets_.assign(targets, targets + BT); else targets_.clear();
  Activations& a = acts_;

  // embedding, then x_0 = dropout(encoded)
  LLM_PROF(kProfEncoderFwd, ref::encoder_forward(a.encoded.data(), inputs, param(kWte), param(kWpe), B, T, C));
  LLM_PROF(kProfResidualFwd,
           ref::dropout_forward(a.residual.data(), a.encoded.data(), BT * C, drop_spec(0, kDropEmbed)));

  const size_t C3 = 3 * (size_t)C, C4 = 4 * (size_t)C;
  for (int l = 0; l < L; l++) {
    // this layer's parameters
    const float* ln1w = param(kLn1w) + l * C;
    const float* ln1b = param(kLn1b) + l * C;
    const float* qkvw = param(kQkvw) + l * C3 * C;
    const float* qkvb = config_.qkv_bias ? param(kQkvb) + l * C3 : nullptr;
    const float* attprojw = param(kAttprojw) + (size_t)l * C * C;
    const float* attprojb = param(kAttprojb) + l * C;
    const float* ln2w = param(kLn2w) + l * C;
    const float* ln2b = param(kLn2b) + l * C;
    const float* fcw = param(kFcw) + l * C4 * C;
    const float* fcb = param(kFcb) + l * C4;
    const float* fcprojw = param(kFcprojw) + (size_t)l * C * C4;
    const float* fcprojb = param(kFcprojb) + l * C;
    // this layer's activations
    const float* x = a.residual.data() + l * BT * C;
    float* ln1 = a.ln1.data() + l * BT * C;
    float* ln1_mean = a.ln1_mean.data() + l * BT;
    float* ln1_rstd = a.ln1_rstd.data() + l * BT;
    float* qkv = a.qkv.data() + l * BT * C3;
    float* att = a.att.data() + (size_t)l * B * NH * T * T;
    float* atty = a.atty.data() + l * BT * C;
    float* attproj = a.attproj.data() + l * BT * C;
    float* residual2 = a.residual2.data() + l * BT * C;
    float* ln2 = a.ln2.data() + l * BT * C;
    float* ln2_mean = a.ln2_mean.data() + l * BT;
    float* ln2_rstd = a.ln2_rstd.data() + l * BT;
    float* fch = a.fch.data() + l * BT * C4;
    float* fch_gelu = a.fch_gelu.data() + l * BT * C4;
    float* fcproj = a.fcproj.data() + l * BT * C;
    float* x_next = a.residual.data() + (l + 1) * BT * C;

    // attention branch: x + drop(proj(attn(ln1(x))))
    LLM_PROF(kProfLayernormFwd, ref::layernorm_forward(ln1, ln1_mean, ln1_rstd, x, ln1w, ln1b, (int)BT, C));
    LLM_PROF(kProfMatmulFwd, ref::matmul_forward(qkv, ln1, qkvw, qkvb, (int)BT, C, 3 * C));
    LLM_PROF(kProfAttentionFwd, ref::attention_forward(atty, att, qkv, B, T, C, NH, drop_spec(l, kDropAttn)));
    LLM_PROF(kProfMatmulFwd, ref::matmul_forward(attproj, atty, attprojw, attprojb, (int)BT, C, C));
    // without dropout (p = 0: eval, or none configured) the branch is added directly, not copied through scratch
    const DropoutSpec drop_attn_res = drop_spec(l, kDropResidAttn);
    const float* attn_branch = attproj;
    if (drop_attn_res.p > 0.0f) {
      LLM_PROF(kProfResidualFwd, ref::dropout_forward(a.scratch.data(), attproj, BT * C, drop_attn_res));
      attn_branch = a.scratch.data();
    }
    LLM_PROF(kProfResidualFwd, ref::residual_forward(residual2, x, attn_branch, BT * C));
    // MLP branch: residual2 + drop(fcproj(gelu(fc(ln2(residual2)))))
    LLM_PROF(kProfLayernormFwd, ref::layernorm_forward(ln2, ln2_mean, ln2_rstd, residual2, ln2w, ln2b, (int)BT, C));
    LLM_PROF(kProfMatmulFwd, ref::matmul_forward(fch, ln2, fcw, fcb, (int)BT, C, 4 * C));
    LLM_PROF(kProfGeluFwd, ref::gelu_forward(fch_gelu, fch, BT * C4));
    LLM_PROF(kProfMatmulFwd, ref::matmul_forward(fcproj, fch_gelu, fcprojw, fcprojb, (int)BT, 4 * C, C));
    const DropoutSpec drop_mlp_res = drop_spec(l, kDropResidMlp);
    const float* mlp_branch = fcproj;
    if (drop_mlp_res.p > 0.0f) {
      LLM_PROF(kProfResidualFwd, ref::dropout_forward(a.scratch.data(), fcproj, BT * C, drop_mlp_res));
      mlp_branch = a.scratch.data();
    }
    LLM_PROF(kProfResidualFwd, ref::residual_forward(x_next, residual2, mlp_branch, BT * C));
  }

  // final LayerNorm, logits = lnf · headᵀ, softmax (+ cross-entropy)
  const float* x_last = a.residual.data() + (size_t)L * BT * C;
  LLM_PROF(kProfLayernormFwd, ref::layernorm_forward(a.lnf.data(), a.lnf_mean.data(), a.lnf_rstd.data(), x_last,
                                                     param(kLnfw), param(kLnfb), (int)BT, C));
  LLM_PROF(kProfMatmulFwd, ref::matmul_forward(a.logits.data(), a.lnf.data(), head_weight(), nullptr, (int)BT, C, Vp));
  std::vector<int> no_targets;
  const int* tg = targets;
  if (!tg) {  // probabilities are still wanted (sampling); every row "ignored" for the loss
    no_targets.assign(BT, -100);
    tg = no_targets.data();
  }
  float loss;
  LLM_PROF(kProfSoftmaxCeFwd, loss = ref::softmax_crossentropy_forward(a.losses.data(), a.probs.data(), a.logits.data(),
                                                                       tg, (int)BT, V, Vp));
  num_valid_ = 0;
  if (targets)
    for (size_t i = 0; i < BT; i++) num_valid_ += targets[i] != -100;
  mean_loss_ = targets ? loss : -1.0f;
  return mean_loss_;
}

void GPT2Model::zero_grad() {
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

void GPT2Model::backward(float loss_scale) {
  if (!have_targets_) fail("backward: the last forward had no targets");
  if (grads_.size() != params_.size()) grads_.assign(params_.size(), 0.0f);
  // After zero_grad(): the weight-gradient GEMMs below overwrite their tensors (dW = dYᵀ·X instead of +=),
  // every other gradient tensor is zeroed here. The head's GEMM runs first, so with a tied head the
  // embedding's scatter-add at the end lands on the freshly written wte gradient.
  const bool overwrite = grads_zero_pending_;
  grads_zero_pending_ = false;
  if (overwrite) {
    for (int k = 0; k < kNumParamTensors; k++) {
      const auto t = (ParamTensor)k;
      const bool by_gemm = t == kQkvw || t == kAttprojw || t == kFcw || t == kFcprojw || t == kLmHead ||
                           (t == kWte && config_.tied_head);
      if (!by_gemm) std::fill_n(grads_.data() + offsets_[k], sizes_[k], 0.0f);
    }
  }
  const bool acc_w = !overwrite;  // accumulate weight gradients (false: overwrite)
  const int L = config_.num_layers, C = config_.channels, NH = config_.num_heads;
  const int V = config_.vocab_size, Vp = config_.padded_vocab_size, B = B_, T = T_;
  const size_t BT = (size_t)B * T, C3 = 3 * (size_t)C, C4 = 4 * (size_t)C;
  Activations& a = acts_;
  ActGrads& d = dacts_;
  if (d.dlogits.size() != BT * Vp) {
    d.dlogits.assign(BT * Vp, 0);
    for (auto* v : {&d.dlnf, &d.dres, &d.dres2, &d.dx, &d.dln, &d.datty, &d.dattproj, &d.dfcproj, &d.dencoded})
      v->assign(BT * C, 0);
    d.dqkv.assign(BT * C3, 0);
    d.dfch.assign(BT * C4, 0);
    d.dfch_gelu.assign(BT * C4, 0);
  }
  // every op accumulates, so each activation-gradient buffer is cleared right before its use (dlogits is
  // written by the loss backward instead: clearing 256×50304 floats costs a full extra pass)
  {
    ProfScope clears(kProfResidualBwd);
    fill_zero(d.dlnf);
    fill_zero(d.dres);
  }

  // loss = loss_scale · mean over valid targets
  const float dloss = num_valid_ > 0 ? loss_scale / num_valid_ : 0.0f;
  LLM_PROF(kProfSoftmaxCeBwd,
           ref::softmax_crossentropy_backward(d.dlogits.data(), a.probs.data(), targets_.data(), (int)BT, V, Vp, dloss,
                                              /*accumulate=*/false));
  float* dhead = config_.tied_head ? grad(kWte) : grad(kLmHead);
  LLM_PROF(kProfMatmulBwd, ref::matmul_backward(d.dlnf.data(), dhead, nullptr, d.dlogits.data(), a.lnf.data(),
                                                head_weight(), (int)BT, C, Vp, acc_w));
  const float* x_last = a.residual.data() + (size_t)L * BT * C;
  LLM_PROF(kProfLayernormBwd, ref::layernorm_backward(d.dres.data(), grad(kLnfw), grad(kLnfb), d.dlnf.data(), x_last,
                                                      param(kLnfw), a.lnf_mean.data(), a.lnf_rstd.data(), (int)BT, C));

  for (int l = L - 1; l >= 0; l--) {
    // parameters and their gradients
    const float* ln1w = param(kLn1w) + l * C;
    const float* qkvw = param(kQkvw) + l * C3 * C;
    const float* attprojw = param(kAttprojw) + (size_t)l * C * C;
    const float* ln2w = param(kLn2w) + l * C;
    const float* fcw = param(kFcw) + l * C4 * C;
    const float* fcprojw = param(kFcprojw) + (size_t)l * C * C4;
    float* dln1w = grad(kLn1w) + l * C;
    float* dln1b = grad(kLn1b) + l * C;
    float* dqkvw = grad(kQkvw) + l * C3 * C;
    float* dqkvb = config_.qkv_bias ? grad(kQkvb) + l * C3 : nullptr;
    float* dattprojw = grad(kAttprojw) + (size_t)l * C * C;
    float* dattprojb = grad(kAttprojb) + l * C;
    float* dln2w = grad(kLn2w) + l * C;
    float* dln2b = grad(kLn2b) + l * C;
    float* dfcw = grad(kFcw) + l * C4 * C;
    float* dfcb = grad(kFcb) + l * C4;
    float* dfcprojw = grad(kFcprojw) + (size_t)l * C * C4;
    float* dfcprojb = grad(kFcprojb) + l * C;
    // saved activations
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
    // without dropout (p = 0) dL/dfcproj is dL/dx_{l+1} itself: no clear + copy into d.dfcproj
    const DropoutSpec drop_mlp_res = drop_spec(l, kDropResidMlp);
    const float* dfcproj = d.dres.data();
    {
      ProfScope clears(kProfResidualBwd);
      if (drop_mlp_res.p > 0.0f) fill_zero(d.dfcproj);  // (dres2 needs no clearing: the copy below overwrites it)
      fill_zero(d.dfch_gelu);
      fill_zero(d.dfch);
      fill_zero(d.dln);
      std::copy(d.dres.begin(), d.dres.end(), d.dres2.begin());
    }
    if (drop_mlp_res.p > 0.0f) {
      LLM_PROF(kProfResidualBwd, ref::dropout_backward(d.dfcproj.data(), d.dres.data(), BT * C, drop_mlp_res));
      dfcproj = d.dfcproj.data();
    }
    LLM_PROF(kProfMatmulBwd, ref::matmul_backward(d.dfch_gelu.data(), dfcprojw, dfcprojb, dfcproj, fch_gelu, fcprojw,
                                                  (int)BT, 4 * C, C, acc_w));
    LLM_PROF(kProfGeluBwd, ref::gelu_backward(d.dfch.data(), fch, d.dfch_gelu.data(), BT * C4));
    LLM_PROF(kProfMatmulBwd,
             ref::matmul_backward(d.dln.data(), dfcw, dfcb, d.dfch.data(), ln2, fcw, (int)BT, C, 4 * C, acc_w));
    LLM_PROF(kProfLayernormBwd,
             ref::layernorm_backward(d.dres2.data(), dln2w, dln2b, d.dln.data(), residual2, ln2w,
                                     a.ln2_mean.data() + l * BT, a.ln2_rstd.data() + l * BT, (int)BT, C));

    // attention branch: residual2 = x_l + drop(attproj)
    const DropoutSpec drop_attn_res = drop_spec(l, kDropResidAttn);
    const float* dattproj = d.dres2.data();  // p = 0: dL/dattproj is dL/dresidual2 itself
    {
      ProfScope clears(kProfResidualBwd);
      if (drop_attn_res.p > 0.0f) fill_zero(d.dattproj);  // (dx: overwritten by the copy below)
      fill_zero(d.datty);
      fill_zero(d.dqkv);
      fill_zero(d.dln);
      std::copy(d.dres2.begin(), d.dres2.end(), d.dx.begin());
    }
    if (drop_attn_res.p > 0.0f) {
      LLM_PROF(kProfResidualBwd, ref::dropout_backward(d.dattproj.data(), d.dres2.data(), BT * C, drop_attn_res));
      dattproj = d.dattproj.data();
    }
    LLM_PROF(kProfMatmulBwd, ref::matmul_backward(d.datty.data(), dattprojw, dattprojb, dattproj, atty, attprojw,
                                                  (int)BT, C, C, acc_w));
    LLM_PROF(kProfAttentionBwd,
             ref::attention_backward(d.dqkv.data(), d.datty.data(), qkv, att, B, T, C, NH, drop_spec(l, kDropAttn)));
    LLM_PROF(kProfMatmulBwd,
             ref::matmul_backward(d.dln.data(), dqkvw, dqkvb, d.dqkv.data(), ln1, qkvw, (int)BT, C, 3 * C, acc_w));
    LLM_PROF(kProfLayernormBwd,
             ref::layernorm_backward(d.dx.data(), dln1w, dln1b, d.dln.data(), x, ln1w, a.ln1_mean.data() + l * BT,
                                     a.ln1_rstd.data() + l * BT, (int)BT, C));
    std::swap(d.dres, d.dx);  // dL/dx_l becomes the incoming gradient of the layer below
  }

  // x_0 = drop(encoded), encoded = wte[inp] + wpe[t]
  {
    ProfScope clears(kProfResidualBwd);
    fill_zero(d.dencoded);
  }
  LLM_PROF(kProfResidualBwd, ref::dropout_backward(d.dencoded.data(), d.dres.data(), BT * C, drop_spec(0, kDropEmbed)));
  LLM_PROF(kProfEncoderBwd, ref::encoder_backward(grad(kWte), grad(kWpe), d.dencoded.data(), inputs_.data(), B, T, C));
}

}  // namespace llm
