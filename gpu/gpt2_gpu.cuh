// gpt2_gpu.cuh — GPT-2 on the device: parameters, activations, forward, backward, AdamW, built from kernels/.
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
// Attention runs the path set_attention() chose (--attention: portable by default here, gpu/attention_path.h).
// Data parallel (comm world > 1; one process per GPU):
//   params/grads are padded to Comm::padded(n, world) (zeros) so ZeRO-1 shards are even;
//   ZeRO-0: on the last micro-step backward() all-reduces each layer's gradient slices on a separate comm
//           stream as soon as that layer is done (an event orders them after it), overlapping the rest of
//           backward; update() makes the training stream wait for the comm stream, the 1/world of the mean is
//           folded into AdamW's gradient scale;
//   ZeRO-1: update() reduce-scatters the padded grads, the norm is own shard's Σg² summed over ranks, AdamW runs
//           on the own shard only (fp32 master/m/v exist only for that shard), then the params are all-gathered.
//   Weight/optimizer-state get/set are collective then (every rank calls them, full arrays in and out).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda_cpu/compat.cuh"
#include "host/comm.h"
#include "host/error.h"
#include "host/gpt2_config.h"
#include "gpu/attention_dispatch.cuh"  // --attention: portable / flash / cudnn
#include "host/philox.h"
#include "kernels/adamw.cuh"
#include "kernels/attention.cuh"
#include "kernels/classifier.cuh"
#include "kernels/common.cuh"
#include "kernels/dropout.cuh"
#include "kernels/encoder.cuh"
#include "kernels/gelu.cuh"
#include "kernels/global_norm.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/matmul.cuh"

namespace gpu {

using llm::GPT2Config;
using llm::ParamTensor;

// One device allocation (freed with the owner).
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) { resize(n); }
  ~DeviceArray() { release(); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  void resize(size_t n) {
    release();
    n_ = n;
    if (!n) return;
    const cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T));
    if (e == cudaErrorMemoryAllocation) {  // a too-large -b/-t is bad input, not an internal error
      (void)cudaGetLastError();
      p_ = nullptr;
      llm::fail("out of device memory allocating ", n * sizeof(T) >> 20, " MiB; lower -b/-t or use -r 1");
    }
    CUDA_CHECK(e);
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  void release() {
    if (p_) CUDA_CHECK(cudaFree(p_));
    p_ = nullptr;
    n_ = 0;
  }
  T* p_ = nullptr;
  size_t n_ = 0;
};

// Rounds the fp32 master weights into the floatX params: round-to-nearest when seed == 0 (initial weights),
// else stochastic rounding with the bits adamw_kernel used at the step that produced them (exact resume).
// index_offset: the launch's start inside the tensor the seed belongs to (as in kern::adamw_update).
template <class T>
__global__ void params_from_master_kernel(T* params, const float* master, size_t n, uint64_t seed,
                                          size_t index_offset) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    params[i] = seed ? kern::store_rounded<T>(master[i], kern::rounding_bits(seed, index_offset + i))
                     : kern::from_float<T>(master[i]);
}

// Stochastic-rounding seed of tensor k at optimizer step t (1-based): independent per step and tensor.
inline uint64_t rounding_seed(uint64_t run_seed, int64_t t, int k) {
  const uint64_t s = llm::splitmix64(llm::splitmix64(run_seed ^ 0x5a17ed5eedull) ^ ((uint64_t)t << 8 | (uint64_t)k));
  return s ? s : 1;  // 0 means "round to nearest" in params_from_master_kernel
}

struct AdamWSettings {
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.0f;
  std::array<bool, llm::kNumParamTensors> decay{};  // which tensors get weight decay (cpu/optimizer.h decay_mask)
  uint64_t seed = 0;                                // run seed (stochastic rounding)
};

template <class floatX>
class GPT2 {
 public:
  static constexpr bool kBf16 = !std::is_same<floatX, float>::value;

  // B, T: the fixed batch shape of every forward. comm: gradient collectives (LocalComm for one process).
  // zero_stage: 0 = every rank keeps the whole optimizer state, 1 = each its own shard (only with world > 1).
  GPT2(const GPT2Config& cfg, int B, int T, bool recompute_gelu, llm::Comm* comm, int zero_stage = 0,
       cudaStream_t stream = 0)
      : cfg_(cfg), B_(B), T_(T), recompute_(recompute_gelu), comm_(comm), stream_(stream) {
    const int C = cfg.channels, NH = cfg.num_heads;
    if (cfg.channels <= 0 || cfg.num_layers <= 0 || NH <= 0 || C % NH != 0 || cfg.padded_vocab_size < cfg.vocab_size)
      llm::fail("model config: inconsistent sizes (C=", C, " NH=", NH, " L=", cfg.num_layers, ")");
    if (T <= 0 || B <= 0 || T > cfg.max_seq_len) llm::fail("batch shape B=", B, " T=", T, " does not fit the model");
    if (!(cfg.dropout >= 0.0f && cfg.dropout < 1.0f)) llm::fail("model config: dropout ", cfg.dropout, " outside [0,1)");
    kern::attention_check_shape("GPT-2 attention", B, T, C, NH);
    sizes_ = llm::param_sizes(cfg);
    offsets_ = llm::param_offsets(cfg);
    n_ = llm::num_parameters(cfg);
    if (zero_stage != 0 && zero_stage != 1) llm::fail("-z/--zero must be 0 or 1 (got ", zero_stage, ")");
    world_ = comm_ ? comm_->world_size() : 1;
    zero1_ = zero_stage == 1 && world_ > 1;
    np_ = llm::Comm::padded(n_, world_);
    opt_begin_ = zero1_ ? comm_->shard_begin(np_) : 0;
    opt_end_ = zero1_ ? comm_->shard_end(np_) : np_;
    params_.resize(np_);
    grads_.resize(np_);
    m_.resize(opt_end_ - opt_begin_);
    v_.resize(opt_end_ - opt_begin_);
    if (kBf16) master_.resize(opt_end_ - opt_begin_);
    CUDA_CHECK(cudaMemset(params_.get(), 0, np_ * sizeof(floatX)));  // the padding stays 0 forever
    CUDA_CHECK(cudaMemset(grads_.get(), 0, np_ * sizeof(floatX)));
    CUDA_CHECK(cudaMemset(m_.get(), 0, m_.size() * sizeof(float)));
    CUDA_CHECK(cudaMemset(v_.get(), 0, v_.size() * sizeof(float)));
    if (kBf16) CUDA_CHECK(cudaMemset(master_.get(), 0, master_.size() * sizeof(float)));
    if (world_ > 1) {
      CUDA_CHECK(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking));
      CUDA_CHECK(cudaEventCreateWithFlags(&grads_ready_, cudaEventDisableTiming));
      CUDA_CHECK(cudaEventCreateWithFlags(&comm_done_, cudaEventDisableTiming));
    }
    allocate_activations();
  }
  ~GPT2() {
    if (comm_stream_) (void)cudaStreamDestroy(comm_stream_);
    if (grads_ready_) (void)cudaEventDestroy(grads_ready_);
    if (comm_done_) (void)cudaEventDestroy(comm_done_);
  }
  GPT2(const GPT2&) = delete;
  GPT2& operator=(const GPT2&) = delete;

  const GPT2Config& config() const { return cfg_; }
  size_t num_params() const { return n_; }
  int world_size() const { return world_; }
  bool zero1() const { return zero1_; }
  int B() const { return B_; }
  int T() const { return T_; }
  size_t offset(ParamTensor k) const { return offsets_[k]; }
  size_t size(ParamTensor k) const { return sizes_[k]; }
  floatX* params() { return params_.get(); }
  floatX* grads() { return grads_.get(); }

  // The attention implementation of forward/backward (gpu/attention_path.h): `requested` itself, or auto's choice
  // for this precision, head size and dropout; llm::Error when it cannot run. Default: portable.
  AttentionPath set_attention(AttentionPath requested) {
    attention_ = resolve_attention(requested, attention_facts(cfg_.channels, cfg_.num_heads, kBf16, cfg_.dropout));
    return attention_;
  }
  AttentionPath attention() const { return attention_; }

  // ---- weights and optimizer state (host fp32 <-> device) ----
  // With world > 1 these are collective (every rank calls them with / gets the full arrays).
  // step > 0 (resume): the bf16 params of step t are the master rounded with step t's bits (t = 0: nearest).
  void set_weights(const float* w, int64_t step = 0, uint64_t run_seed = 0) {
    if (kBf16) {
      upload_shard(master_.get(), w);
      for_each_own_piece([&](int k, size_t a, size_t b) {
        const uint64_t seed = step > 0 ? rounding_seed(run_seed, step, k) : 0;
        launch_kernel(params_from_master_kernel<floatX>, dim3(kern::grid_stride_blocks(b - a, 256)), dim3(256), 0,
                      stream_, params_.get() + a, (const float*)master_.get() + (a - opt_begin_), b - a, seed,
                      a - offsets_[k]);
      });
      if (zero1_) comm_->all_gather(params_.get(), np_, llm::CommType::kBf16, (void*)stream_);
    } else {
      CUDA_CHECK(cudaMemcpy(params_.get(), w, n_ * sizeof(float), cudaMemcpyHostToDevice));
    }
    CUDA_CHECK(cudaDeviceSynchronize());
  }
  // The fp32 (master) weights, n floats.
  void get_weights(float* w) {
    if (kBf16) download_shard(w, master_.get());
    else CUDA_CHECK(cudaMemcpy(w, params_.get(), n_ * sizeof(float), cudaMemcpyDeviceToHost));
  }
  // The floatX params / grads widened to fp32 (what the model computes with).
  void get_params_as_float(float* out) const { download_as_float(out, params_.get()); }
  void get_grads_as_float(float* out) const {
    if (comm_stream_) CUDA_CHECK(cudaStreamSynchronize(comm_stream_));  // an overlapped reduction may be running
    download_as_float(out, grads_.get());
  }
  void set_optimizer_state(const float* m, const float* v) {
    upload_shard(m_.get(), m);
    upload_shard(v_.get(), v);
  }
  void get_optimizer_state(float* m, float* v) {
    download_shard(m, m_.get());
    download_shard(v, v_.get());
  }

  // ---- forward / backward ----
  // inputs, targets: host (B,T) ids (targets may be nullptr: no loss, logits only). training: dropout on with
  // dropout_seed. with_grad: the classifier overwrites the logits with dlogits · loss_scale for backward().
  // Returns the mean loss over non-ignored targets (-1 without targets). Synchronises (reads the loss).
  float forward(const int* inputs, const int* targets, bool training, uint64_t dropout_seed, bool with_grad = false,
                float loss_scale = 1.0f) {
    const int L = cfg_.num_layers, C = cfg_.channels, NH = cfg_.num_heads, V = cfg_.vocab_size;
    const int Vp = cfg_.padded_vocab_size, B = B_, T = T_, BT = B * T;
    const size_t btc = (size_t)BT * C;
    for (int i = 0; i < BT; i++)
      if (inputs[i] < 0 || inputs[i] >= V) llm::fail("forward: input token ", inputs[i], " at ", i, " not in [0,", V, ")");
    if (targets)
      for (int i = 0; i < BT; i++)
        if (targets[i] != -100 && (targets[i] < 0 || targets[i] >= V))
          llm::fail("forward: target ", targets[i], " at ", i, " not in [0,", V, ") or -100");
    if (with_grad && !targets) llm::fail("forward: gradients need targets");
    inputs_host_.assign(inputs, inputs + BT);
    drop_p_ = training ? cfg_.dropout : 0.0f;
    drop_seed_ = dropout_seed;
    CUDA_CHECK(cudaMemcpyAsync(inputs_.get(), inputs, BT * sizeof(int), cudaMemcpyHostToDevice, stream_));
    if (targets) {
      CUDA_CHECK(cudaMemcpyAsync(targets_.get(), targets, BT * sizeof(int), cudaMemcpyHostToDevice, stream_));
    } else {
      targets_host_.assign(BT, -100);
      CUDA_CHECK(cudaMemcpyAsync(targets_.get(), targets_host_.data(), BT * sizeof(int), cudaMemcpyHostToDevice, stream_));
    }

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
      // attention branch
      kern::matmul_forward(qkv, (floatX*)nullptr, act(ln1_, l, btc), w.qkvw, w.qkvb, BT, C, 3 * C, stream_, backend_);
      gpu::attention_forward(attention_, atty, stat(lse_, l, (size_t)B * NH * T), qkv, B, T, C, NH,
                             spec(l, llm::kDropAttn), stream_);
      kern::matmul_forward(branch_.get(), (floatX*)nullptr, atty, w.attprojw, w.attprojb, BT, C, C, stream_, backend_);
      if (drop_p_ > 0.0f) kern::dropout_forward(branch_.get(), branch_.get(), btc, spec(l, llm::kDropResidAttn), stream_);
      kern::fused_residual_layernorm_forward(r2, act(ln2_, l, btc), stat(ln2_mean_, l), stat(ln2_rstd_, l), x,
                                             branch_.get(), w.ln2w, w.ln2b, BT, C, stream_);
      // MLP branch (GELU separate from the matmul so that recompute reproduces it bit for bit)
      kern::matmul_forward(fch, (floatX*)nullptr, act(ln2_, l, btc), w.fcw, w.fcb, BT, C, 4 * C, stream_, backend_);
      kern::gelu_forward(fch_gelu, fch, 4 * btc, stream_);
      kern::matmul_forward(branch_.get(), (floatX*)nullptr, fch_gelu, w.fcprojw, w.fcprojb, BT, 4 * C, C, stream_,
                           backend_);
      if (drop_p_ > 0.0f) kern::dropout_forward(branch_.get(), branch_.get(), btc, spec(l, llm::kDropResidMlp), stream_);
      // x_{l+1} = r2 + branch, normalised by the next layer's ln1 (or lnf after the last layer)
      const bool last = l == L - 1;
      kern::fused_residual_layernorm_forward(
          act(residual_, l + 1, btc), last ? lnf_.get() : act(ln1_, l + 1, btc),
          last ? lnf_mean_.get() : stat(ln1_mean_, l + 1), last ? lnf_rstd_.get() : stat(ln1_rstd_, l + 1), r2,
          branch_.get(), last ? p(llm::kLnfw) : w.next_ln1w, last ? p(llm::kLnfb) : w.next_ln1b, BT, C, stream_);
    }
    kern::matmul_forward(logits_.get(), (floatX*)nullptr, lnf_.get(), head(), (const floatX*)nullptr, BT, C, Vp,
                         stream_, backend_);
    kern::fused_classifier(logits_.get(), losses_.get(), targets_.get(), valid_.get(), BT, V, Vp, loss_scale, with_grad,
                           stream_);
    have_dlogits_ = with_grad;
    if (!targets) return -1.0f;
    kern::classifier_mean_loss(mean_loss_.get(), losses_.get(), valid_.get(), BT, stream_);
    float loss = 0.0f;
    CUDA_CHECK(cudaMemcpyAsync(&loss, mean_loss_.get(), sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    return loss;
  }

  // Logits (B,T,Vp) of the last forward without gradients, widened to fp32 on the host.
  void get_logits(std::vector<float>* out) const {
    if (have_dlogits_) llm::fail("get_logits: the last forward overwrote the logits with their gradient");
    out->resize((size_t)B_ * T_ * cfg_.padded_vocab_size);
    download_as_float(out->data(), logits_.get(), out->size());
  }
  // Row (b, t) of the logits only (sampling).
  void get_logits_row(int b, int t, float* out) const {
    if (have_dlogits_) llm::fail("get_logits_row: the last forward overwrote the logits with their gradient");
    const size_t Vp = cfg_.padded_vocab_size;
    download_as_float(out, logits_.get() + ((size_t)b * T_ + t) * Vp, Vp);
  }

  void zero_grad() { CUDA_CHECK(cudaMemsetAsync(grads_.get(), 0, np_ * sizeof(floatX), stream_)); }

  // Accumulates (+=) the gradients of the last forward(..., with_grad = true) into grads().
  // last_micro_step: this micro-batch completes the step's gradients; under data-parallel ZeRO-0 each layer's
  // gradients are then all-reduced on the comm stream as soon as that layer's backward is done.
  void backward(bool last_micro_step = false) {
    if (!have_dlogits_) llm::fail("backward: the last forward did not prepare gradients");
    have_dlogits_ = false;
    const bool overlap = last_micro_step && world_ > 1 && !zero1_;
    const int L = cfg_.num_layers, C = cfg_.channels, NH = cfg_.num_heads, Vp = cfg_.padded_vocab_size;
    const int B = B_, T = T_, BT = B * T;
    const size_t btc = (size_t)BT * C;
    float* mm_scratch = mm_scratch_.get();
    float* ln_scratch = ln_scratch_.get();
    floatX* dres = dres_.get();   // dL/d(residual stream at the current point)
    floatX* dln = dln_.get();     // dL/d(LayerNorm output)
    floatX* dbr = dbranch_.get(); // dL/d(branch before dropout)

    // head: dlnf = dlogits · head, dhead += dlogitsᵀ · lnf; then lnf backward into dres (cleared first)
    kern::matmul_backward(dln, head_grad(), (floatX*)nullptr, logits_.get(), lnf_.get(), head(), (const floatX*)nullptr,
                          mm_scratch, BT, C, Vp, stream_, backend_);
    kern::fill_zero(dres, btc, stream_);
    kern::layernorm_backward(dres, g(llm::kLnfw), g(llm::kLnfb), ln_scratch, dln, act(residual_, L, btc),
                             p(llm::kLnfw), lnf_mean_.get(), lnf_rstd_.get(), BT, C, stream_);

    for (int l = L - 1; l >= 0; l--) {
      const LayerParams w = layer_params(l);
      const LayerGrads dw = layer_grads(l);
      floatX* fch = act(fch_, l, 4 * btc);
      floatX* fch_gelu = recompute_ ? fch_gelu_.get() : act(fch_gelu_, l, 4 * btc);
      // MLP branch: x_{l+1} = r2 + drop(fcproj(gelu(fch)))
      const floatX* dproj = dres;
      if (drop_p_ > 0.0f) {
        kern::dropout_backward(dbr, dres, btc, spec(l, llm::kDropResidMlp), false, stream_);
        dproj = dbr;
      }
      if (recompute_) kern::gelu_forward(fch_gelu, fch, 4 * btc, stream_);
      kern::matmul_backward(dfch_.get(), dw.fcprojw, dw.fcprojb, dproj, fch_gelu, w.fcprojw, fch, mm_scratch, BT,
                            4 * C, C, stream_, backend_);
      kern::matmul_backward(dln, dw.fcw, dw.fcb, dfch_.get(), act(ln2_, l, btc), w.fcw, (const floatX*)nullptr,
                            mm_scratch, BT, C, 4 * C, stream_, backend_);
      kern::layernorm_backward(dres, dw.ln2w, dw.ln2b, ln_scratch, dln, act(residual2_, l, btc), w.ln2w,
                               stat(ln2_mean_, l), stat(ln2_rstd_, l), BT, C, stream_);
      // attention branch: r2 = x_l + drop(attproj(attn(ln1(x_l))))
      dproj = dres;
      if (drop_p_ > 0.0f) {
        kern::dropout_backward(dbr, dres, btc, spec(l, llm::kDropResidAttn), false, stream_);
        dproj = dbr;
      }
      kern::matmul_backward(datty_.get(), dw.attprojw, dw.attprojb, dproj, act(atty_, l, btc), w.attprojw,
                            (const floatX*)nullptr, mm_scratch, BT, C, C, stream_, backend_);
      gpu::attention_backward(attention_, dqkv_.get(), att_scratch_.get(), datty_.get(), act(qkv_, l, 3 * btc),
                              act(atty_, l, btc), stat(lse_, l, (size_t)B * NH * T), B, T, C, NH,
                              spec(l, llm::kDropAttn), stream_);
      kern::matmul_backward(dln, dw.qkvw, dw.qkvb, dqkv_.get(), act(ln1_, l, btc), w.qkvw, (const floatX*)nullptr,
                            mm_scratch, BT, C, 3 * C, stream_, backend_);
      kern::layernorm_backward(dres, dw.ln1w, dw.ln1b, ln_scratch, dln, act(residual_, l, btc), w.ln1w,
                               stat(ln1_mean_, l), stat(ln1_rstd_, l), BT, C, stream_);
      if (overlap) reduce_layer_grads_async(l);  // nothing below writes layer l's gradients again
    }
    // x_0 = drop(wte[inp] + wpe)
    const floatX* demb = dres;
    if (drop_p_ > 0.0f) {
      kern::dropout_backward(dbr, dres, btc, spec(0, llm::kDropEmbed), false, stream_);
      demb = dbr;
    }
    kern::encoder_backward(g(llm::kWte), g(llm::kWpe), enc_scratch_.get(), demb, inputs_host_.data(), B, T, C, stream_);
    if (overlap) reduce_layer_grads_async(-1);  // wte, wpe, lnf, lm_head
  }

  // Global gradient norm (after the data-parallel reduction), clipping folded into AdamW, the update itself.
  // t: 1-based step; lr: this step's learning rate; grad_clip 0 = off. Returns the norm before clipping (the
  // norm of the mean gradient over ranks, the same value on every rank).
  double update(float lr, int64_t t, float grad_clip, const AdamWSettings& hp) {
    const llm::CommType type = kBf16 ? llm::CommType::kBf16 : llm::CommType::kFp32;
    float norm = 0.0f;
    if (world_ == 1) {
      kern::global_norm(norm_.get(), norm_scratch_.get(), grads_.get(), n_, stream_);
      CUDA_CHECK(cudaMemcpyAsync(&norm, norm_.get(), sizeof(float), cudaMemcpyDeviceToHost, stream_));
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    } else {
      // ‖g‖² = Σ over the world shards of each shard's ‖·‖² (fp64 sum): under ZeRO-1 each rank holds only its own
      // summed shard, under ZeRO-0 every rank computes all shards itself — the same numbers either way, so
      // ZeRO-0 and ZeRO-1 clip identically
      if (zero1_) comm_->reduce_scatter_sum(grads_.get(), np_, type, (void*)stream_);
      else if (grads_reduced_) CUDA_CHECK(cudaStreamWaitEvent(stream_, comm_done_, 0));  // reduced during backward
      else comm_->all_reduce_sum(grads_.get(), np_, type, (void*)stream_);
      const size_t shard = np_ / world_;
      for (int r = zero1_ ? comm_->rank() : 0; r < (zero1_ ? comm_->rank() + 1 : world_); r++)
        kern::global_norm(norm_.get() + r, norm_scratch_.get(), grads_.get() + r * shard, shard, stream_);
      shard_norms_.resize(world_);
      CUDA_CHECK(cudaMemcpyAsync(shard_norms_.data(), norm_.get(), world_ * sizeof(float), cudaMemcpyDeviceToHost,
                                 stream_));
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      double sq = 0.0;
      if (zero1_) {
        const double own = shard_norms_[comm_->rank()];
        sq = comm_->all_reduce_sum_host(own * own);
      } else {
        for (int r = 0; r < world_; r++) sq += (double)shard_norms_[r] * shard_norms_[r];
      }
      norm = (float)std::sqrt(sq);
    }
    grads_reduced_ = false;
    // each rank's loss was a mean, so the mean gradient is sum / world: folded (with the clip factor) into the
    // AdamW gradient scale instead of an extra pass
    if (world_ > 1) norm /= (float)world_;
    if (!std::isfinite(norm)) return norm;  // NaN/Inf gradient: no update (same norm on every rank)
    float scale = (grad_clip > 0.0f && norm > grad_clip) ? (float)((double)grad_clip / (double)norm) : 1.0f;
    if (world_ > 1) scale /= (float)world_;
    for_each_own_piece([&](int k, size_t a, size_t b) {
      const size_t s = a - opt_begin_;  // index into the own-shard arrays
      kern::adamw_update(params_.get() + a, kBf16 ? master_.get() + s : (float*)nullptr, grads_.get() + a,
                         m_.get() + s, v_.get() + s, b - a, lr, hp.beta1, hp.beta2, hp.eps,
                         hp.decay[k] ? hp.weight_decay : 0.0f, (int)t, rounding_seed(hp.seed, t, k), stream_, scale,
                         512, a - offsets_[k]);
    });
    if (zero1_) comm_->all_gather(params_.get(), np_, type, (void*)stream_);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    return norm;
  }

 private:
  struct LayerParams {
    const floatX *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb, *ln1w, *next_ln1w,
        *next_ln1b;
  };
  struct LayerGrads {
    floatX *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
  };

  floatX* p(ParamTensor k) const { return params_.get() + offsets_[k]; }
  floatX* g(ParamTensor k) const { return grads_.get() + offsets_[k]; }
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
  LayerGrads layer_grads(int l) const {
    const size_t C = cfg_.channels;
    LayerGrads d;
    d.ln1w = g(llm::kLn1w) + l * C;
    d.ln1b = g(llm::kLn1b) + l * C;
    d.qkvw = g(llm::kQkvw) + l * 3 * C * C;
    d.qkvb = cfg_.qkv_bias ? g(llm::kQkvb) + l * 3 * C : nullptr;
    d.attprojw = g(llm::kAttprojw) + l * C * C;
    d.attprojb = g(llm::kAttprojb) + l * C;
    d.ln2w = g(llm::kLn2w) + l * C;
    d.ln2b = g(llm::kLn2b) + l * C;
    d.fcw = g(llm::kFcw) + l * 4 * C * C;
    d.fcb = g(llm::kFcb) + l * 4 * C;
    d.fcprojw = g(llm::kFcprojw) + l * C * 4 * C;
    d.fcprojb = g(llm::kFcprojb) + l * C;
    return d;
  }
  llm::DropoutSpec spec(int layer, llm::DropoutSite site) const {
    llm::DropoutSpec d;
    d.p = drop_p_;
    d.seed = drop_seed_;
    d.stream = llm::dropout_stream(layer, site);
    return d;
  }

  // fn(k, a, b) for every non-empty [a, b) = tensor k ∩ the own optimizer range (absolute indices), in order.
  template <class Fn>
  void for_each_own_piece(Fn fn) const {
    for (int k = 0; k < llm::kNumParamTensors; k++) {
      const size_t a = std::max(offsets_[k], opt_begin_), b = std::min(offsets_[k] + sizes_[k], opt_end_);
      if (a < b) fn(k, a, b);
    }
  }

  // The ZeRO-0 all-reduce of one layer's gradient slices (l < 0: the tensors outside the layers), on the comm
  // stream after everything the training stream has queued so far; update() waits for comm_done_.
  void reduce_layer_grads_async(int l) {
    const llm::CommType type = kBf16 ? llm::CommType::kBf16 : llm::CommType::kFp32;
    CUDA_CHECK(cudaEventRecord(grads_ready_, stream_));
    CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, grads_ready_, 0));
    const size_t L = cfg_.num_layers;
    for (int k = 0; k < llm::kNumParamTensors; k++) {
      if (!sizes_[k]) continue;
      const bool per_layer = k >= llm::kLn1w && k <= llm::kFcprojb;  // the (L, ...) tensors of gpt2_config.h
      if (per_layer != (l >= 0)) continue;
      const size_t per = per_layer ? sizes_[k] / L : sizes_[k];
      comm_->all_reduce_sum(grads_.get() + offsets_[k] + (per_layer ? (size_t)l * per : 0), per, type,
                            (void*)comm_stream_);
    }
    CUDA_CHECK(cudaEventRecord(comm_done_, comm_stream_));
    grads_reduced_ = true;
  }

  // Host fp32 array of n_ (full) -> this rank's optimizer range of a device array (padding: 0).
  void upload_shard(float* dst, const float* full) {
    const size_t end = std::min(opt_end_, n_);
    CUDA_CHECK(cudaMemset(dst, 0, (opt_end_ - opt_begin_) * sizeof(float)));
    if (end > opt_begin_)
      CUDA_CHECK(cudaMemcpy(dst, full + opt_begin_, (end - opt_begin_) * sizeof(float), cudaMemcpyHostToDevice));
  }
  // This rank's optimizer range of a device array -> the full host array of n_ (ZeRO-1: all-gathered).
  void download_shard(float* full, const float* src) {
    if (!zero1_) {
      CUDA_CHECK(cudaMemcpy(full, src, n_ * sizeof(float), cudaMemcpyDeviceToHost));
      return;
    }
    DeviceArray<float> all(np_);  // transient: checkpoints only
    CUDA_CHECK(cudaMemcpy(all.get() + opt_begin_, src, (opt_end_ - opt_begin_) * sizeof(float),
                          cudaMemcpyDeviceToDevice));
    comm_->all_gather(all.get(), np_, llm::CommType::kFp32, (void*)stream_);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    CUDA_CHECK(cudaMemcpy(full, all.get(), n_ * sizeof(float), cudaMemcpyDeviceToHost));
  }

  void download_as_float(float* out, const floatX* src, size_t n = 0) const {
    if (!n) n = n_;
    if (!kBf16) {
      CUDA_CHECK(cudaMemcpy(out, src, n * sizeof(float), cudaMemcpyDeviceToHost));
      return;
    }
    std::vector<floatX> tmp(n);
    CUDA_CHECK(cudaMemcpy(tmp.data(), src, n * sizeof(floatX), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) out[i] = kern::to_float(tmp[i]);
  }

  void allocate_activations() {
    const size_t L = cfg_.num_layers, C = cfg_.channels, NH = cfg_.num_heads, Vp = cfg_.padded_vocab_size;
    const size_t BT = (size_t)B_ * T_, btc = BT * C;
    residual_.resize((L + 1) * btc);
    ln1_.resize(L * btc);
    ln1_mean_.resize(L * BT);
    ln1_rstd_.resize(L * BT);
    qkv_.resize(L * 3 * btc);
    atty_.resize(L * btc);
    lse_.resize(L * B_ * NH * T_);
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
    logits_.resize(BT * Vp);
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
    norm_.resize(std::max(world_, 1));  // one norm per world shard
    norm_scratch_.resize(kern::global_norm_scratch_floats());
    const size_t mm = std::max(kern::matmul_backward_scratch_floats((int)BT, (int)(4 * C)),
                               kern::matmul_backward_scratch_floats((int)BT, (int)Vp));
    mm_scratch_.resize(mm);
    ln_scratch_.resize(kern::layernorm_backward_scratch_floats((int)BT, (int)C));
    att_scratch_.resize((size_t)B_ * NH * T_);
    enc_scratch_.resize(kern::encoder_backward_scratch_ints(B_, T_));
  }

  GPT2Config cfg_;
  int B_, T_;
  bool recompute_;
  llm::Comm* comm_;
  cudaStream_t stream_;
  int world_ = 1;
  bool zero1_ = false;
  size_t np_ = 0;                        // n_ padded to a multiple of world_ (params_ / grads_ size)
  size_t opt_begin_ = 0, opt_end_ = 0;   // the optimizer range of this rank (ZeRO-1 shard, else [0, np_))
  cudaStream_t comm_stream_ = nullptr;   // ZeRO-0 gradient all-reduce, overlapped with backward
  cudaEvent_t grads_ready_ = nullptr, comm_done_ = nullptr;
  bool grads_reduced_ = false;           // backward already queued this step's all-reduce
  std::vector<float> shard_norms_;
  DeviceArray<float> master_, m_, v_;    // own optimizer range only
  kern::MatmulBackend backend_ = kern::MatmulBackend::Auto;
  AttentionPath attention_ = AttentionPath::kPortable;
  std::array<size_t, llm::kNumParamTensors> sizes_{}, offsets_{};
  size_t n_ = 0;
  DeviceArray<floatX> params_, grads_;
  // activations, stacked per layer
  DeviceArray<floatX> residual_, ln1_, qkv_, atty_, residual2_, ln2_, fch_, fch_gelu_, branch_, lnf_, logits_;
  DeviceArray<float> ln1_mean_, ln1_rstd_, ln2_mean_, ln2_rstd_, lnf_mean_, lnf_rstd_, lse_, losses_;
  // gradients of activations (one layer's worth) and scratch
  DeviceArray<floatX> dres_, dln_, dbranch_, datty_, dqkv_, dfch_;
  DeviceArray<float> mean_loss_, norm_, norm_scratch_, mm_scratch_, ln_scratch_, att_scratch_;
  DeviceArray<int> inputs_, targets_, valid_, enc_scratch_;
  std::vector<int> inputs_host_, targets_host_;
  float drop_p_ = 0.0f;
  uint64_t drop_seed_ = 0;
  bool have_dlogits_ = false;
};

}  // namespace gpu
