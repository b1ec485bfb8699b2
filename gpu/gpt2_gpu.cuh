// gpt2_gpu.cuh — GPT-2 on the device: activations, forward, backward, built from kernels/ (on GPT2Params).
//
// Why a header: train_gpt2.cu (the program) and the parity tests drive the same model code; the tests build it
// through the CUDA-on-CPU layer and compare it with cpu/gpt2_model.h step by step.
// Storage type floatX: float (fp32 mode: bit-for-bit the reference's math up to summation order) or
// __nv_bfloat16 (mixed precision: bf16 params/grads/activations, fp32 master weights + AdamW state, fp32
// LayerNorm statistics, logsumexp and losses; the optimizer writes the bf16 params from the fp32 master by
// stochastic rounding).
// The dataflow is the reference's (cpu/gpt2_model.cpp), with the same dropout sites and Philox streams:
//   x_0 = drop(wte[inp] + wpe)                                 (embedding site, layer 0)
//   per layer: r2 = x + drop(attproj(attn(ln1(x))))            (attention weights site + residual site)
//              x' = r2 + drop(fcproj(gelu(fc(ln2(r2)))))       (MLP residual site)
//   logits = lnf(x_L) · headᵀ, fused softmax + cross-entropy (+ dlogits in place)
// Each residual add is fused with the LayerNorm that follows it. Activation recompute (recompute_gelu): the GELU
// output (L·B·T·4C) is not kept; backward recomputes it from the stored pre-activation, bit for bit the same.
// Memory is allocated once for a fixed (B, T); eval and sampling reuse those buffers.
// Fine-tuning hooks (gpu/finetune_gpu.cuh): set_trainable (frozen tensors get no gradient work and no update;
// backward stops below the lowest block that trains), set_adapters (LoRA on the linears, gpu/linear.cuh),
// set_head_width + forward_trunk / trunk_out / trunk_grad / backward_trunk (another head on lnf's output),
// set_batch_shape (a new B, T per batch; activations grow to the largest B·T seen).
// Attention runs the path set_attention() chose (--attention: portable by default here, gpu/attention_path.h).
// Parameters, gradients, data parallel and AdamW: the base class GPT2Params (gpu/gpt2_params.cuh).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "gpu/gpt2_params.cuh"  // DeviceArray, GPT2Params: parameters, gradients, AdamW, data parallel
#include "gpu/linear.cuh"       // the linears, with optional LoRA adapters
#include "cuda_cpu/compat.cuh"
#include "host/comm.h"
#include "host/error.h"
#include "host/gpt2_config.h"
#include "gpu/attention_dispatch.cuh"  // --attention: portable / flash / cudnn
#include "host/philox.h"
#include "kernels/attention.cuh"
#include "kernels/classifier.cuh"
#include "kernels/common.cuh"
#include "kernels/dropout.cuh"
#include "kernels/encoder.cuh"
#include "kernels/gelu.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/matmul.cuh"

namespace gpu {

using llm::GPT2Config;
using llm::ParamTensor;

template <class floatX>
class GPT2 : public GPT2Params<floatX> {
  using Base = GPT2Params<floatX>;
 public:
  using Base::kBf16;

  // B, T: the fixed batch shape of every forward. comm: gradient collectives (LocalComm for one process).
  // zero_stage: 0 = every rank keeps the whole optimizer state, 1 = each its own shard (only with world > 1).
  GPT2(const GPT2Config& cfg, int B, int T, bool recompute_gelu, llm::Comm* comm, int zero_stage = 0,
       cudaStream_t stream = 0)
      : Base(checked_config(cfg, B, T), comm, zero_stage, stream), B_(B), T_(T), recompute_(recompute_gelu),
        head_width_(cfg.padded_vocab_size) {
    allocate_activations();
  }
  ~GPT2() {
    for (cudaEvent_t e : staged_)
      if (e) (void)cudaEventDestroy(e);
  }

  int B() const { return B_; }
  int T() const { return T_; }

  // ---- fine-tuning hooks (defaults: everything trains, no adapters, the LM head, the constructor's B, T) ----
  void set_batch_shape(int B, int T) {
    checked_config(cfg_, B, T);
    B_ = B;
    T_ = T;
    if ((size_t)B * T > cap_) allocate_activations();
  }
  // trainable(k, layer): see GPT2Params::set_trainable; head: the LM head's weight gets its gradient (tied: in wte).
  void set_trainable(const std::function<bool(ParamTensor, int)>& trainable, bool head) {
    Base::set_trainable(trainable);
    head_trainable_ = head;
    set_backward_range();
  }
  void set_adapters(typename Linears<floatX>::Adapters adapters) {
    lin_.set_adapters(std::move(adapters));
    lin_.reserve(cap_, std::max(4 * cfg_.channels, head_width_));
    set_backward_range();
  }
  Linears<floatX>& linears() { return lin_; }
  // The output width of the head on trunk_out(): the padded vocabulary (the LM head, forward()) or another head's
  // (then no LM logits are kept and forward() refuses).
  void set_head_width(int width) {
    head_width_ = width;
    allocate_activations();
  }
  int head_slot() const { return cfg_.num_layers * llm::kNumBlockLinears; }

  // The attention implementation of forward/backward (gpu/attention_path.h): `requested` itself, or auto's choice
  // for this precision, head size and dropout; llm::Error when it cannot run. Default: portable.
  AttentionPath set_attention(AttentionPath requested) {
    attention_ = resolve_attention(requested, attention_facts(cfg_.channels, cfg_.num_heads, kBf16, cfg_.dropout));
    return attention_;
  }
  AttentionPath attention() const { return attention_; }
  // How the matmuls run (kernels/matmul_plan.h): the trainer passes CublasLt (required) or Own, and --tf32.
  void set_matmul(kern::MatmulOptions m) { backend_ = m; }
  kern::MatmulOptions matmul() const { return backend_; }

  // ---- forward / backward ----
  // inputs, targets: host (B,T) ids (targets may be nullptr: no loss, logits only). training: dropout on with
  // dropout_seed. with_grad: the classifier overwrites the logits with dlogits · loss_scale for backward().
  // Returns the mean loss over non-ignored targets (-1 without targets). Synchronises (reads the loss):
  // stage + forward_queued + read_loss.
  float forward(const int* inputs, const int* targets, bool training, uint64_t dropout_seed, bool with_grad = false,
                float loss_scale = 1.0f) {
    stage(inputs, targets, with_grad);
    forward_queued(training, dropout_seed, with_grad, loss_scale);
    return targets ? read_loss() : -1.0f;
  }

  // A batch (checked: ids in range) -> pinned host memory -> the device, queued on the stream; with with_grad also
  // the embedding backward's bucket plan (kern::encoder_backward_plan), so that backward needs nothing from the host.
  void stage(const int* inputs, const int* targets, bool with_grad) {
    const int V = cfg_.vocab_size, BT = B_ * T_;
    if (targets)
      for (int i = 0; i < BT; i++)
        if (targets[i] != -100 && (targets[i] < 0 || targets[i] >= V))
          llm::fail("forward: target ", targets[i], " at ", i, " not in [0,", V, ") or -100");
    if (with_grad && !targets) llm::fail("forward: gradients need targets");
    load_inputs(inputs);
    int* tg = staging_[slot_]->get() + BT;
    if (targets) std::copy(targets, targets + BT, tg);
    else std::fill(tg, tg + BT, -100);
    CUDA_CHECK(cudaMemcpyAsync(targets_.get(), tg, BT * sizeof(int), cudaMemcpyHostToDevice, stream_));
    if (with_grad) stage_plan();
    CUDA_CHECK(cudaEventRecord(staged_[slot_], stream_));
    has_targets_ = targets != nullptr;
  }

  // The LM forward of the staged batch: kernels only, no host synchronisation (capturable into a CUDA graph; every
  // argument is fixed for a run — with dropout the mask seed is a kernel argument, so a replay would repeat it).
  void forward_queued(bool training, uint64_t dropout_seed, bool with_grad, float loss_scale) {
    const int C = cfg_.channels, V = cfg_.vocab_size, Vp = cfg_.padded_vocab_size, BT = B_ * T_;
    if (head_width_ != Vp) llm::fail("forward: the model has another head (set_head_width)");
    if (with_grad && !has_targets_) llm::fail("forward: gradients need targets");
    run_trunk(training, dropout_seed);
    lin_.forward(logits_.get(), nullptr, lnf_.get(), head(), nullptr, BT, C, Vp, head_slot(), stream_, backend_);
    kern::fused_classifier(logits_.get(), losses_.get(), targets_.get(), valid_.get(), BT, V, Vp, loss_scale, with_grad,
                           stream_);
    have_dlogits_ = with_grad;
    if (has_targets_) kern::classifier_mean_loss(mean_loss_.get(), losses_.get(), valid_.get(), BT, stream_);
  }

  // The mean loss of the last forward with targets (waits for the stream).
  float read_loss() {
    CUDA_CHECK(cudaMemcpyAsync(loss_host_.get(), mean_loss_.get(), sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    return *loss_host_.get();
  }
  // Adds the last forward's mean loss to the step's loss sum (GPT2Params::read_results), on the device.
  void accumulate_loss() {
    launch_kernel(accumulate_loss_kernel<double>, dim3(1), dim3(1), 0, stream_, Base::loss_sum_dev(),
                  (const float*)mean_loss_.get());
  }

 private:
  // Embedding, the blocks and lnf on the loaded inputs.
  void run_trunk(bool training, uint64_t dropout_seed) {
    const int L = cfg_.num_layers, C = cfg_.channels, NH = cfg_.num_heads, B = B_, T = T_, BT = B * T;
    const size_t btc = (size_t)BT * C;
    drop_p_ = training ? cfg_.dropout : 0.0f;
    drop_seed_ = dropout_seed;
    // embedding: x_0 = drop(wte[inp] + wpe)
    floatX* x0 = act(residual_, 0, btc);
    if (drop_p_ > 0.0f) {
      kern::encoder_forward(branch_.get(), inputs_.get(), p(llm::kWte), p(llm::kWpe), B, T, C, stream_);
      kern::dropout_forward(x0, branch_.get(), btc, spec(0, llm::kDropEmbed), stream_);
    } else {
      kern::encoder_forward(x0, inputs_.get(), p(llm::kWte), p(llm::kWpe), B, T, C, stream_);
    }
    kern::layernorm_forward(act(ln1_, 0, btc), stat(ln1_mean_, 0), stat(ln1_rstd_, 0), x0, p(llm::kLn1w),
                            p(llm::kLn1b), BT, C, stream_);

    for (int l = 0; l < L; l++) {
      const LayerParams w = layer_params(l);
      floatX* x = act(residual_, l, btc);
      floatX* qkv = act(qkv_, l, 3 * btc);
      floatX* atty = act(atty_, l, btc);
      floatX* r2 = act(residual2_, l, btc);
      floatX* fch = act(fch_, l, 4 * btc);
      floatX* fch_gelu = recompute_ ? fch_gelu_.get() : act(fch_gelu_, l, 4 * btc);
      const int s = l * llm::kNumBlockLinears;
      // attention branch
      lin_.forward(qkv, nullptr, act(ln1_, l, btc), w.qkvw, w.qkvb, BT, C, 3 * C, s + llm::kLinQkv, stream_, backend_);
      gpu::attention_forward(attention_, atty, stat(lse_, l, (size_t)B * NH * T), qkv, B, T, C, NH,
                             spec(l, llm::kDropAttn), stream_);
      lin_.forward(branch_.get(), nullptr, atty, w.attprojw, w.attprojb, BT, C, C, s + llm::kLinAttproj, stream_,
                   backend_);
      if (drop_p_ > 0.0f) kern::dropout_forward(branch_.get(), branch_.get(), btc, spec(l, llm::kDropResidAttn), stream_);
      kern::fused_residual_layernorm_forward(r2, act(ln2_, l, btc), stat(ln2_mean_, l), stat(ln2_rstd_, l), x,
                                             branch_.get(), w.ln2w, w.ln2b, BT, C, stream_);
      // MLP branch. GELU fused into the fc matmul (cuBLASLt's GELU_AUX_BIAS epilogue; the own GEMM applies
      // gelu_forward's formula to the stored pre-activation): fch keeps the pre-activation for the backward.
      // With recompute the GELU stays a separate gelu_forward, so the backward's recompute is bit for bit the
      // forward's (cuBLASLt's epilogue may round differently from gelu_forward).
      if (recompute_) {
        lin_.forward(fch, nullptr, act(ln2_, l, btc), w.fcw, w.fcb, BT, C, 4 * C, s + llm::kLinFc, stream_, backend_);
        kern::gelu_forward(fch_gelu, fch, 4 * btc, stream_);
      } else {
        lin_.forward(fch_gelu, fch, act(ln2_, l, btc), w.fcw, w.fcb, BT, C, 4 * C, s + llm::kLinFc, stream_, backend_);
      }
      lin_.forward(branch_.get(), nullptr, fch_gelu, w.fcprojw, w.fcprojb, BT, 4 * C, C, s + llm::kLinFcproj, stream_,
                   backend_);
      if (drop_p_ > 0.0f) kern::dropout_forward(branch_.get(), branch_.get(), btc, spec(l, llm::kDropResidMlp), stream_);
      // x_{l+1} = r2 + branch, normalised by the next layer's ln1 (or lnf after the last layer)
      const bool last = l == L - 1;
      kern::fused_residual_layernorm_forward(
          act(residual_, l + 1, btc), last ? lnf_.get() : act(ln1_, l + 1, btc),
          last ? lnf_mean_.get() : stat(ln1_mean_, l + 1), last ? lnf_rstd_.get() : stat(ln1_rstd_, l + 1), r2,
          branch_.get(), last ? p(llm::kLnfw) : w.next_ln1w, last ? p(llm::kLnfb) : w.next_ln1b, BT, C, stream_);
    }
  }

 public:
  // The trunk alone, for another head: inputs (B,T) host ids → trunk_out() = lnf(x_L) (B·T, C).
  void forward_trunk(const int* inputs, bool training, uint64_t dropout_seed) {
    load_inputs(inputs);
    run_trunk(training, dropout_seed);
  }
  const floatX* trunk_out() const { return lnf_.get(); }
  // dL/d trunk_out() (B·T, C): the head writes it, then calls backward_trunk().
  floatX* trunk_grad() { return dln_.get(); }

  // Logits (B,T,Vp) of the last forward without gradients, widened to fp32 on the host.
  void get_logits(std::vector<float>* out) const {
    if (have_dlogits_) llm::fail("get_logits: the last forward overwrote the logits with their gradient");
    out->resize((size_t)B_ * T_ * cfg_.padded_vocab_size);
    download_as_float(out->data(), logits_.get(), out->size());
  }
  // The per-position losses (B,T) of the last forward with targets (0 where the target was -100).
  void get_losses(float* out) const {
    CUDA_CHECK(cudaMemcpyAsync(out, losses_.get(), (size_t)B_ * T_ * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  // Row (b, t) of the logits only (sampling).
  void get_logits_row(int b, int t, float* out) const {
    if (have_dlogits_) llm::fail("get_logits_row: the last forward overwrote the logits with their gradient");
    const size_t Vp = cfg_.padded_vocab_size;
    download_as_float(out, logits_.get() + ((size_t)b * T_ + t) * Vp, Vp);
  }

  // Accumulates (+=) the gradients of the last forward(..., with_grad = true) into grads().
  // last_micro_step: this micro-batch completes the step's gradients; under data-parallel ZeRO-0 each layer's
  // gradients are then all-reduced on the comm stream as soon as that layer's backward is done.
  void backward(bool last_micro_step = false) {
    if (!have_dlogits_) llm::fail("backward: the last forward did not prepare gradients");
    have_dlogits_ = false;
    Base::ensure_optimizer();  // lazy gradients (gpt2_params.cuh); allocated by zero_grad before any capture
    // head: dlnf = dlogits · head, dhead += dlogitsᵀ · lnf
    lin_.backward(dln_.get(), head_trainable_ ? head_grad() : nullptr, nullptr, logits_.get(), lnf_.get(), head(),
                  nullptr, mm_scratch_.get(), B_ * T_, cfg_.channels, cfg_.padded_vocab_size, head_slot(), stream_,
                  backend_);
    backward_trunk(last_micro_step);
  }

  // From trunk_grad() down to the lowest block that trains (accumulating into grads()).
  void backward_trunk(bool last_micro_step = false) {
    Base::ensure_optimizer();
    const bool overlap = last_micro_step && world_ > 1 && !zero1_;
    const int L = cfg_.num_layers, C = cfg_.channels, NH = cfg_.num_heads;
    const int B = B_, T = T_, BT = B * T;
    const size_t btc = (size_t)BT * C;
    float* mm_scratch = mm_scratch_.get();
    float* ln_scratch = ln_scratch_.get();
    floatX* dres = dres_.get();   // dL/d(residual stream at the current point)
    floatX* dln = dln_.get();     // dL/d(LayerNorm output)
    floatX* dbr = dbranch_.get(); // dL/d(branch before dropout)
    if (!trunk_trains_) {
      for (int l = L - 1; l >= -1 && overlap; l--) reduce_layer_grads_async(l);
      return;
    }
    // lnf backward into dres (cleared first)
    kern::fill_zero(dres, btc, stream_);
    kern::layernorm_backward(dres, grad_or_dummy(llm::kLnfw, 0), grad_or_dummy(llm::kLnfb, 0), ln_scratch, dln,
                             act(residual_, L, btc), p(llm::kLnfw), lnf_mean_.get(), lnf_rstd_.get(), BT, C, stream_);

    for (int l = L - 1; l >= low_; l--) {
      const LayerParams w = layer_params(l);
      const LayerGrads dw = layer_grads(l);
      const int s = l * llm::kNumBlockLinears;
      floatX* fch = act(fch_, l, 4 * btc);
      floatX* fch_gelu = recompute_ ? fch_gelu_.get() : act(fch_gelu_, l, 4 * btc);
      // MLP branch: x_{l+1} = r2 + drop(fcproj(gelu(fch)))
      const floatX* dproj = dres;
      if (drop_p_ > 0.0f) {
        kern::dropout_backward(dbr, dres, btc, spec(l, llm::kDropResidMlp), false, stream_);
        dproj = dbr;
      }
      if (recompute_) kern::gelu_forward(fch_gelu, fch, 4 * btc, stream_);
      lin_.backward(dfch_.get(), dw.fcprojw, dw.fcprojb, dproj, fch_gelu, w.fcprojw, fch, mm_scratch, BT, 4 * C, C,
                    s + llm::kLinFcproj, stream_, backend_);
      lin_.backward(dln, dw.fcw, dw.fcb, dfch_.get(), act(ln2_, l, btc), w.fcw, nullptr, mm_scratch, BT, C, 4 * C,
                    s + llm::kLinFc, stream_, backend_);
      kern::layernorm_backward(dres, dw.ln2w, dw.ln2b, ln_scratch, dln, act(residual2_, l, btc), w.ln2w,
                               stat(ln2_mean_, l), stat(ln2_rstd_, l), BT, C, stream_);
      // attention branch: r2 = x_l + drop(attproj(attn(ln1(x_l))))
      dproj = dres;
      if (drop_p_ > 0.0f) {
        kern::dropout_backward(dbr, dres, btc, spec(l, llm::kDropResidAttn), false, stream_);
        dproj = dbr;
      }
      lin_.backward(datty_.get(), dw.attprojw, dw.attprojb, dproj, act(atty_, l, btc), w.attprojw, nullptr,
                    mm_scratch, BT, C, C, s + llm::kLinAttproj, stream_, backend_);
      gpu::attention_backward(attention_, dqkv_.get(), att_scratch_.get(), datty_.get(), act(qkv_, l, 3 * btc),
                              act(atty_, l, btc), stat(lse_, l, (size_t)B * NH * T), B, T, C, NH,
                              spec(l, llm::kDropAttn), stream_);
      lin_.backward(dln, dw.qkvw, dw.qkvb, dqkv_.get(), act(ln1_, l, btc), w.qkvw, nullptr, mm_scratch, BT, C, 3 * C,
                    s + llm::kLinQkv, stream_, backend_);
      kern::layernorm_backward(dres, dw.ln1w, dw.ln1b, ln_scratch, dln, act(residual_, l, btc), w.ln1w,
                               stat(ln1_mean_, l), stat(ln1_rstd_, l), BT, C, stream_);
      if (overlap) reduce_layer_grads_async(l);  // nothing below writes layer l's gradients again
    }
    for (int l = low_ - 1; l >= 0 && overlap; l--) reduce_layer_grads_async(l);  // frozen: zeros
    // x_0 = drop(wte[inp] + wpe): the lookups train when both tables do (a tied head alone trains wte through the
    // head only, as the reference does)
    const floatX* demb = dres;
    if (embeddings_train_ && drop_p_ > 0.0f) {
      kern::dropout_backward(dbr, dres, btc, spec(0, llm::kDropEmbed), false, stream_);
      demb = dbr;
    }
    if (embeddings_train_) {
      if (!plan_staged_) stage_plan();  // forward_trunk's batch (the training step staged it with the batch)
      // B·T blocks fit every plan: the launch does not depend on the batch (a CUDA graph replays it)
      kern::encoder_backward_planned(g(llm::kWte), g(llm::kWpe), (const int*)enc_scratch_.get(), demb, B, T, C, BT,
                                     stream_);
    }
    if (overlap) reduce_layer_grads_async(-1);  // wte, wpe, lnf, lm_head
  }

 private:
  // Validates the (B,T) host ids and queues their upload from the next pinned staging slot. Two slots in turn: a
  // slot is rewritten only after its previous copies finished (an event), i.e. this waits at most for the copies
  // of two batches ago.
  void load_inputs(const int* inputs) {
    const int V = cfg_.vocab_size, BT = B_ * T_;
    for (int i = 0; i < BT; i++)
      if (inputs[i] < 0 || inputs[i] >= V) llm::fail("forward: input token ", inputs[i], " at ", i, " not in [0,", V, ")");
    slot_ ^= 1;
    CUDA_CHECK(cudaEventSynchronize(staged_[slot_]));
    int* in = staging_[slot_]->get();  // inputs | targets | plan
    std::copy(inputs, inputs + BT, in);
    CUDA_CHECK(cudaMemcpyAsync(inputs_.get(), in, BT * sizeof(int), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaEventRecord(staged_[slot_], stream_));
    plan_staged_ = false;
  }
  // The embedding backward's plan of the loaded batch -> its staging slot -> enc_scratch_.
  void stage_plan() {
    const int BT = B_ * T_;
    int* in = staging_[slot_]->get();
    kern::encoder_backward_plan(in + 2 * BT, in, B_, T_);
    CUDA_CHECK(cudaMemcpyAsync(enc_scratch_.get(), in + 2 * BT, kern::encoder_backward_scratch_ints(B_, T_) * sizeof(int),
                               cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaEventRecord(staged_[slot_], stream_));
    plan_staged_ = true;
  }

  struct LayerParams {
    const floatX *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb, *ln1w, *next_ln1w,
        *next_ln1b;
  };
  struct LayerGrads {
    floatX *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
  };

  const floatX* head() const { return cfg_.tied_head ? p(llm::kWte) : p(llm::kLmHead); }
  floatX* head_grad() const { return cfg_.tied_head ? g(llm::kWte) : g(llm::kLmHead); }
  static floatX* act(const DeviceArray<floatX>& a, int l, size_t per_layer) { return a.get() + (size_t)l * per_layer; }
  float* stat(const DeviceArray<float>& a, int l, size_t per_layer = 0) const {
    return a.get() + (size_t)l * (per_layer ? per_layer : (size_t)B_ * T_);
  }
  LayerParams layer_params(int l) const {
    const size_t C = cfg_.channels, L = cfg_.num_layers;
    LayerParams w;
    w.qkvw = p(llm::kQkvw) + l * 3 * C * C;
    w.qkvb = cfg_.qkv_bias ? p(llm::kQkvb) + l * 3 * C : nullptr;
    w.attprojw = p(llm::kAttprojw) + l * C * C;
    w.attprojb = p(llm::kAttprojb) + l * C;
    w.ln2w = p(llm::kLn2w) + l * C;
    w.ln2b = p(llm::kLn2b) + l * C;
    w.fcw = p(llm::kFcw) + l * 4 * C * C;
    w.fcb = p(llm::kFcb) + l * 4 * C;
    w.fcprojw = p(llm::kFcprojw) + l * C * 4 * C;
    w.fcprojb = p(llm::kFcprojb) + l * C;
    w.ln1w = p(llm::kLn1w) + l * C;
    w.next_ln1w = (size_t)l + 1 < L ? p(llm::kLn1w) + (l + 1) * C : nullptr;
    w.next_ln1b = (size_t)l + 1 < L ? p(llm::kLn1b) + (l + 1) * C : nullptr;
    return w;
  }
  // Layer l's gradients: null where frozen (no weight-gradient GEMM), frozen LayerNorms into a discarded buffer.
  LayerGrads layer_grads(int l) const {
    auto z = [&](ParamTensor k) { return grad_or_null(k, l); };
    auto ln = [&](ParamTensor k) { return grad_or_dummy(k, l); };
    return {ln(llm::kLn1w), ln(llm::kLn1b), z(llm::kQkvw), z(llm::kQkvb), z(llm::kAttprojw), z(llm::kAttprojb),
            ln(llm::kLn2w), ln(llm::kLn2b), z(llm::kFcw), z(llm::kFcb), z(llm::kFcprojw), z(llm::kFcprojb)};
  }
  // Tensor k's gradient slice of layer l (l = 0 outside the blocks); null when frozen or absent.
  floatX* grad_or_null(ParamTensor k, int l) const {
    const size_t per = Base::size(k) / (Base::per_layer(k) ? cfg_.num_layers : 1);
    return per && Base::trainable(k, l) ? g(k) + l * per : nullptr;
  }
  // The same for the LayerNorm weights/biases, whose kernel always writes: frozen ones into dummy_ln_.
  floatX* grad_or_dummy(ParamTensor k, int l) const {
    floatX* d = grad_or_null(k, l);
    const bool bias = k == llm::kLn1b || k == llm::kLn2b || k == llm::kLnfb;
    return d ? d : dummy_ln_.get() + (bias ? cfg_.channels : 0);
  }
  // Where backward stops: the lowest block with a trainable tensor (0 with adapters or trainable embeddings).
  void set_backward_range() {
    const int L = cfg_.num_layers;
    embeddings_train_ = Base::trainable(llm::kWte) && Base::trainable(llm::kWpe);
    low_ = lin_.any() || embeddings_train_ ? 0 : L;
    for (int l = 0; l < low_; l++)
      for (int k = llm::kLn1w; k <= llm::kFcprojb; k++)
        if (Base::trainable((ParamTensor)k, l)) low_ = std::min(low_, l);
    trunk_trains_ = low_ < L || Base::trainable(llm::kLnfw) || Base::trainable(llm::kLnfb);
  }
  llm::DropoutSpec spec(int layer, llm::DropoutSite site) const {
    llm::DropoutSpec d;
    d.p = drop_p_;
    d.seed = drop_seed_;
    d.stream = llm::dropout_stream(layer, site);
    return d;
  }

  // Activations for cap_ = max(B·T so far) rows; logits only for the LM head.
  void allocate_activations() {
    cap_ = std::max(cap_, (size_t)B_ * T_);
    const size_t L = cfg_.num_layers, C = cfg_.channels, NH = cfg_.num_heads, Vp = cfg_.padded_vocab_size;
    const size_t BT = cap_, btc = BT * C, head = (size_t)head_width_;
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
    fch_gelu_.resize((recompute_ ? 1 : L) * 4 * btc);
    branch_.resize(btc);
    lnf_.resize(btc);
    lnf_mean_.resize(BT);
    lnf_rstd_.resize(BT);
    logits_.resize(head == Vp ? BT * Vp : 0);
    losses_.resize(BT);
    dres_.resize(btc);
    dln_.resize(btc);
    dbranch_.resize(btc);
    datty_.resize(btc);
    dqkv_.resize(3 * btc);
    dfch_.resize(4 * btc);
    inputs_.resize(BT);
    targets_.resize(BT);
    valid_.resize(1);
    mean_loss_.resize(1);
    const size_t mm = std::max(kern::matmul_backward_scratch_floats((int)BT, (int)(4 * C)),
                               kern::matmul_backward_scratch_floats((int)BT, (int)head));
    mm_scratch_.resize(mm);
    ln_scratch_.resize(kern::layernorm_backward_scratch_floats((int)BT, (int)C));
    att_scratch_.resize(BT * NH);
    enc_scratch_.resize(kern::encoder_backward_scratch_ints(1, (int)BT));
    for (int i = 0; i < 2; i++) {  // inputs | targets | plan, pinned
      if (staged_[i]) CUDA_CHECK(cudaEventSynchronize(staged_[i]));
      else CUDA_CHECK(cudaEventCreateWithFlags(&staged_[i], cudaEventDisableTiming));
      if (!staging_[i] || staging_[i]->size() < 2 * BT + enc_scratch_.size())
        staging_[i] = std::make_unique<PinnedArray<int>>(2 * BT + enc_scratch_.size());
    }
    dummy_ln_.resize(2 * C);
    lin_.reserve(BT, std::max(4 * C, head));
  }

  static const GPT2Config& checked_config(const GPT2Config& cfg, int B, int T) {
    const int C = cfg.channels, NH = cfg.num_heads;
    if (cfg.channels <= 0 || cfg.num_layers <= 0 || NH <= 0 || C % NH != 0 || cfg.padded_vocab_size < cfg.vocab_size)
      llm::fail("model config: inconsistent sizes (C=", C, " NH=", NH, " L=", cfg.num_layers, ")");
    if (T <= 0 || B <= 0 || T > cfg.max_seq_len) llm::fail("batch shape B=", B, " T=", T, " does not fit the model");
    if (!(cfg.dropout >= 0.0f && cfg.dropout < 1.0f)) llm::fail("model config: dropout ", cfg.dropout, " outside [0,1)");
    kern::attention_check_shape("GPT-2 attention", B, T, C, NH);
    return cfg;
  }

  using Base::cfg_;
  using Base::stream_;
  using Base::world_;
  using Base::zero1_;
  using Base::params_;
  using Base::grads_;
  using Base::offsets_;
  using Base::p;
  using Base::g;
  using Base::download_as_float;
  using Base::reduce_layer_grads_async;

  int B_, T_;
  bool recompute_;
  kern::MatmulOptions backend_;  // Auto unless set_matmul
  AttentionPath attention_ = AttentionPath::kPortable;
  size_t cap_ = 0;                      // rows (B·T) the activations are allocated for
  int head_width_;                      // set_head_width (padded vocabulary: the LM head)
  bool head_trainable_ = true, embeddings_train_ = true, trunk_trains_ = true;
  int low_ = 0;                         // backward runs blocks [low_, L)
  Linears<floatX> lin_;
  DeviceArray<floatX> dummy_ln_;        // (2C): the gradients of frozen LayerNorms (discarded)
  // activations, stacked per layer
  DeviceArray<floatX> residual_, ln1_, qkv_, atty_, residual2_, ln2_, fch_, fch_gelu_, branch_, lnf_, logits_;
  DeviceArray<float> ln1_mean_, ln1_rstd_, ln2_mean_, ln2_rstd_, lnf_mean_, lnf_rstd_, lse_, losses_;
  // gradients of activations (one layer's worth) and scratch
  DeviceArray<floatX> dres_, dln_, dbranch_, datty_, dqkv_, dfch_;
  DeviceArray<float> mean_loss_, mm_scratch_, ln_scratch_, att_scratch_;
  DeviceArray<int> inputs_, targets_, valid_, enc_scratch_;
  std::unique_ptr<PinnedArray<int>> staging_[2];  // load_inputs/stage: inputs | targets | embedding backward plan
  cudaEvent_t staged_[2] = {nullptr, nullptr};      // after the copies out of staging_[i]
  int slot_ = 0;
  bool has_targets_ = false, plan_staged_ = false;
  PinnedArray<float> loss_host_{1};
  float drop_p_ = 0.0f;
  uint64_t drop_seed_ = 0;
  bool have_dlogits_ = false;
};

}  // namespace gpu
