// gpt2_params.cuh — the device GPT-2's parameters, gradients and optimizer: storage, host fp32 <-> device
// transfer, the data-parallel gradient reduction and the AdamW update.
//
// Why separate from gpt2_gpu.cuh: the model's forward/backward only read params() and accumulate into grads();
// where they live (padded, sharded), how ranks combine them and how AdamW updates them is this header's concern.
// Storage type floatX: float, or __nv_bfloat16 with fp32 master weights + AdamW state (the optimizer writes the bf16
// params from the fp32 master by stochastic rounding).
// Data parallel (comm world > 1; one process per GPU):
//   params/grads are padded to Comm::padded(n, world) (zeros) so ZeRO-1 shards are even;
//   ZeRO-0: on the last micro-step backward() all-reduces each layer's gradient slices on a separate comm
//           stream as soon as that layer is done (an event orders them after it), overlapping the rest of
//           backward; update() makes the training stream wait for the comm stream, the 1/world of the mean is
//           folded into AdamW's gradient scale;
//   ZeRO-1: update() reduce-scatters the padded grads, the norm is own shard's Σg² summed over ranks, AdamW runs
//           on the own shard only (fp32 master/m/v exist only for that shard), then the params are all-gathered.
//   Weight/optimizer-state get/set are collective then (every rank calls them, full arrays in and out).
// Lazy optimizer state: the gradients, AdamW m/v and (bf16) the fp32 master are allocated by ensure_optimizer() on
// the first zero_grad / backward / update / get/set_optimizer_state, never inside a capture (step_graph.cuh runs
// step 1 eagerly), so a model used only for forward passes (eval, hellaswag) holds none of them. bf16 set_weights
// allocates the master (training starts from the exact fp32 weights) unless set_forward_only() said the model
// only evaluates: then it rounds to nearest straight into the params, as the master path does.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "cuda_cpu/compat.cuh"
#include "host/comm.h"
#include "host/error.h"
#include "host/gpt2_config.h"
#include "host/philox.h"
#include "kernels/adamw.cuh"
#include "kernels/common.cuh"
#include "kernels/global_norm.cuh"

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

// One pinned (page-locked) host allocation: the step's host<->device copies come from / go to these, so that they
// are truly asynchronous and can be captured into a CUDA graph (a pageable copy cannot).
template <class T>
class PinnedArray {
 public:
  explicit PinnedArray(size_t n) : n_(n) {
    CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&p_), n * sizeof(T)));
    std::memset(static_cast<void*>(p_), 0, n * sizeof(T));
  }
  ~PinnedArray() { (void)cudaFreeHost(p_); }
  PinnedArray(const PinnedArray&) = delete;
  PinnedArray& operator=(const PinnedArray&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// The clip factor and the skip flag of the update, from the shard norms in device memory: the norm of the
// (summed) gradient is n_0 for one shard, else sqrt(Σ_r n_r²) (fp64, rank order); the norm of the mean gradient
// is that / world, and the AdamW gradient scale folds the clip factor and 1/world. The arithmetic the host did
// before the step moved to the device, operation for operation (so an eager and a replayed step agree bit for bit).
template <class Step>  // kern::AdamWStep (a template: the header defines it in every file that includes it)
__global__ void clip_scale_kernel(Step* step, float* norm_out, const float* shard_norms, int shards, int world,
                                  float grad_clip) {
  float norm = shard_norms[0];
  if (shards > 1) {
    double sq = 0.0;
    for (int r = 0; r < shards; r++) sq += (double)shard_norms[r] * shard_norms[r];
    norm = (float)sqrt(sq);
  }
  if (world > 1) norm /= (float)world;
  *norm_out = norm;
  step->skip = isfinite(norm) ? 0 : 1;  // NaN/Inf gradient: no update (the same norm on every rank)
  float scale = (grad_clip > 0.0f && norm > grad_clip) ? (float)((double)grad_clip / (double)norm) : 1.0f;
  if (world > 1) scale /= (float)world;
  step->grad_scale = scale;
}

// *sum += *mean (the step's loss, summed over its micro-steps in fp64 as the host loop did).
template <class Acc>  // double
__global__ void accumulate_loss_kernel(Acc* sum, const float* mean) { *sum += (Acc)*mean; }

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

// The update's per-step values in device memory (kern::adamw_update_device reads them): lr and bias corrections
// staged by the host, grad_scale and skip written by clip_scale_kernel, one stochastic-rounding seed per tensor.
struct StepScalars {
  kern::AdamWStep adamw;
  uint64_t seed[llm::kNumParamTensors];
};
// What a step leaves for the host (copied into pinned memory at the end of the update; read after a sync).
struct StepResults {
  double loss_sum;  // Σ of the micro-steps' mean losses (accumulate_loss)
  float norm;       // gradient norm before clipping
};

struct AdamWSettings {
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.0f;
  std::array<bool, llm::kNumParamTensors> decay{};  // which tensors get weight decay (host/optimizer_config.h decay_mask)
  uint64_t seed = 0;                                // run seed (stochastic rounding)
};

// Parameters, gradients and optimizer state of one GPT-2 (the base of GPT2 in gpu/gpt2_gpu.cuh).
template <class floatX>
class GPT2Params {
 public:
  static constexpr bool kBf16 = !std::is_same<floatX, float>::value;

  // comm: gradient collectives (LocalComm for one process). zero_stage: 0 = every rank keeps the whole optimizer
  // state, 1 = each its own shard (only with world > 1).
  GPT2Params(const GPT2Config& cfg, llm::Comm* comm, int zero_stage, cudaStream_t stream)
      : cfg_(cfg), comm_(comm), stream_(stream) {
    if (!stream_) {  // the model's own stream: nothing of a step runs on the legacy default stream (CUDA graphs)
      CUDA_CHECK(cudaStreamCreate(&own_stream_));  // blocking: synchronous copies (checkpoints) still order after it
      stream_ = own_stream_;
    }
    CUDA_CHECK(cudaEventCreateWithFlags(&step_staged_, cudaEventDisableTiming));
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
    CUDA_CHECK(cudaMemset(params_.get(), 0, np_ * sizeof(floatX)));  // the padding stays 0 forever
    if (world_ > 1) {
      CUDA_CHECK(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking));
      CUDA_CHECK(cudaEventCreateWithFlags(&grads_ready_, cudaEventDisableTiming));
      CUDA_CHECK(cudaEventCreateWithFlags(&comm_done_, cudaEventDisableTiming));
    }
    norm_.resize(std::max(world_, 1));  // one norm per world shard
    norm_scratch_.resize(kern::global_norm_scratch_floats());
    trainable_.assign((size_t)llm::kNumParamTensors * cfg.num_layers, 1);
    step_dev_.resize(1);
    results_dev_.resize(1);
    CUDA_CHECK(cudaMemset(results_dev_.get(), 0, sizeof(StepResults)));
  }
  ~GPT2Params() {
    if (step_staged_) (void)cudaEventDestroy(step_staged_);
    if (own_stream_) (void)cudaStreamDestroy(own_stream_);
    if (comm_stream_) (void)cudaStreamDestroy(comm_stream_);
    if (grads_ready_) (void)cudaEventDestroy(grads_ready_);
    if (comm_done_) (void)cudaEventDestroy(comm_done_);
  }
  GPT2Params(const GPT2Params&) = delete;
  GPT2Params& operator=(const GPT2Params&) = delete;

  const GPT2Config& config() const { return cfg_; }
  size_t num_params() const { return n_; }
  int world_size() const { return world_; }
  bool zero1() const { return zero1_; }
  size_t offset(ParamTensor k) const { return offsets_[k]; }
  size_t size(ParamTensor k) const { return sizes_[k]; }
  floatX* params() { return params_.get(); }
  floatX* grads() { return grads_.get(); }
  cudaStream_t stream() const { return stream_; }

  // Fine-tuning: which tensors train, trainable(k, layer) (layer 0 outside the blocks); update() leaves the others
  // as they are. Default: everything. When nothing trains (LoRA, a new head only) the gradients and the AdamW
  // moments are released for good (the master weights stay: get_weights returns them).
  void set_trainable(const std::function<bool(ParamTensor, int)>& fn) {
    if (!has_grads()) llm::fail("set_trainable: the gradients were released by an earlier all-frozen mask");
    for (int k = 0; k < llm::kNumParamTensors; k++)
      for (int l = 0; l < cfg_.num_layers; l++) trainable_[k * cfg_.num_layers + l] = fn((ParamTensor)k, l);
    if (std::find(trainable_.begin(), trainable_.end(), 1) != trainable_.end()) return;
    frozen_ = true;
    grads_.resize(0);
    m_.resize(0);
    v_.resize(0);
  }
  bool has_grads() const { return !frozen_; }  // some tensor trains (its gradients exist once a step begins)

  // Eval / hellaswag: bf16 set_weights keeps no fp32 master (see the header comment). Should such a model train
  // after all, ensure_optimizer starts the master from the bf16 params.
  void set_forward_only() { forward_only_ = true; }
  // Device bytes of the optimizer state allocated so far (gradients, m, v, master): 0 for a forward-only model.
  size_t optimizer_bytes() const {
    return grads_.size() * sizeof(floatX) + (m_.size() + v_.size() + master_.size()) * sizeof(float);
  }
  // Allocates (zeroed) what a step needs and a forward does not; no-op once done or when nothing trains. Synchronous
  // allocations: called before any capture (zero_grad of step 1 at the latest).
  void ensure_optimizer() {
    if (kBf16 && master_.size() == 0) {
      std::vector<float> w(n_);
      download_as_float(w.data(), params_.get());
      master_.resize(opt_end_ - opt_begin_);
      upload_shard(master_.get(), w.data());
    }
    if (frozen_ || grads_.size() > 0) return;
    grads_.resize(np_);
    m_.resize(opt_end_ - opt_begin_);
    v_.resize(opt_end_ - opt_begin_);
    CUDA_CHECK(cudaMemset(grads_.get(), 0, np_ * sizeof(floatX)));
    CUDA_CHECK(cudaMemset(m_.get(), 0, m_.size() * sizeof(float)));
    CUDA_CHECK(cudaMemset(v_.get(), 0, v_.size() * sizeof(float)));
  }
  bool trainable(ParamTensor k, int layer = 0) const { return trainable_[k * cfg_.num_layers + layer]; }
  // the (L, ...) tensors of gpt2_config.h
  static bool per_layer(ParamTensor k) { return k >= llm::kLn1w && k <= llm::kFcprojb; }

  // ---- weights and optimizer state (host fp32 <-> device) ----
  // With world > 1 these are collective (every rank calls them with / gets the full arrays).
  // step > 0 (resume): the bf16 params of step t are the master rounded with step t's bits (t = 0: nearest).
  void set_weights(const float* w, int64_t step = 0, uint64_t run_seed = 0) {
    if (kBf16 && forward_only_ && step == 0 && master_.size() == 0) {
      round_into_params(w);
    } else if (kBf16) {
      if (master_.size() == 0) master_.resize(opt_end_ - opt_begin_);
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
  // The fp32 (master) weights, n floats (bf16 without a master: the params widened).
  void get_weights(float* w) {
    if (kBf16 && master_.size() > 0) download_shard(w, master_.get());
    else if (kBf16) download_as_float(w, params_.get());
    else CUDA_CHECK(cudaMemcpy(w, params_.get(), n_ * sizeof(float), cudaMemcpyDeviceToHost));
  }
  // The floatX params / grads widened to fp32 (what the model computes with).
  void get_params_as_float(float* out) const { download_as_float(out, params_.get()); }
  void get_grads_as_float(float* out) const {
    if (!has_grads()) llm::fail("get_grads_as_float: nothing trains");
    if (grads_.size() == 0) {  // no step began: nothing accumulated
      std::fill(out, out + n_, 0.0f);
      return;
    }
    if (comm_stream_) CUDA_CHECK(cudaStreamSynchronize(comm_stream_));  // an overlapped reduction may be running
    download_as_float(out, grads_.get());
  }
  void set_optimizer_state(const float* m, const float* v) {
    if (!has_grads()) llm::fail("set_optimizer_state: nothing trains");
    ensure_optimizer();
    upload_shard(m_.get(), m);
    upload_shard(v_.get(), v);
  }
  void get_optimizer_state(float* m, float* v) {
    if (!has_grads()) llm::fail("get_optimizer_state: nothing trains");
    ensure_optimizer();
    download_shard(m, m_.get());
    download_shard(v, v_.get());
  }

  // Clears the gradients and the step's loss sum (queued on the stream).
  void zero_grad() {
    ensure_optimizer();
    if (has_grads()) CUDA_CHECK(cudaMemsetAsync(grads_.get(), 0, np_ * sizeof(floatX), stream_));
    CUDA_CHECK(cudaMemsetAsync(results_dev_.get(), 0, sizeof(StepResults), stream_));
  }

  // Global gradient norm (after the data-parallel reduction), clipping folded into AdamW, the update itself.
  // t: 1-based step; lr: this step's learning rate; grad_clip 0 = off. Returns the norm before clipping (the
  // norm of the mean gradient over ranks, the same value on every rank). Synchronous: stage_update +
  // update_queued + a wait for the stream.
  double update(float lr, int64_t t, float grad_clip, const AdamWSettings& hp) {
    if (!has_grads()) llm::fail("update: nothing trains");
    ensure_optimizer();
    stage_update(lr, t, hp);
    update_queued(grad_clip, hp);
    return read_results().norm;
  }

  // Step t's host-side values (lr, bias corrections, rounding seeds) -> pinned memory -> the device, queued before
  // update_queued. Waits only for the previous step's copy out of the pinned buffer (long done).
  void stage_update(float lr, int64_t t, const AdamWSettings& hp) {
    CUDA_CHECK(cudaEventSynchronize(step_staged_));
    StepScalars& s = *step_host_.get();
    s.adamw = kern::adamw_step(lr, hp.beta1, hp.beta2, (int)t);  // grad_scale and skip: clip_scale_kernel
    for (int k = 0; k < llm::kNumParamTensors; k++) s.seed[k] = rounding_seed(hp.seed, t, k);
    CUDA_CHECK(cudaMemcpyAsync(step_dev_.get(), &s, sizeof(StepScalars), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaEventRecord(step_staged_, stream_));
  }

  // The update's device work, with no host synchronisation: the gradient reduction (data parallel), the norm, the
  // clip factor (clip_scale_kernel), AdamW reading the staged values, and the step's results into pinned memory.
  // With world 1 every per-step value is read from device memory, so this can be captured once into a CUDA graph
  // and replayed (grad_clip and hp are fixed for a run).
  void update_queued(float grad_clip, const AdamWSettings& hp) {
    ensure_optimizer();  // no-op: zero_grad of the step allocated it (a capture must not allocate)
    const llm::CommType type = kBf16 ? llm::CommType::kBf16 : llm::CommType::kFp32;
    if (world_ == 1) {
      kern::global_norm(norm_.get(), norm_scratch_.get(), grads_.get(), n_, stream_);
    } else {
      // ‖g‖² = Σ over the world shards of each shard's ‖·‖² (fp64, rank order): under ZeRO-1 each rank holds only
      // its own summed shard (the others' norms come with an fp32 all-reduce of the zero-filled norm array, exact:
      // each sum has one non-zero term), under ZeRO-0 every rank computes all shards itself — the same numbers
      // either way, so ZeRO-0 and ZeRO-1 clip identically
      if (zero1_) comm_->reduce_scatter_sum(grads_.get(), np_, type, (void*)stream_);
      else if (grads_reduced_) CUDA_CHECK(cudaStreamWaitEvent(stream_, comm_done_, 0));  // reduced during backward
      else comm_->all_reduce_sum(grads_.get(), np_, type, (void*)stream_);
      const size_t shard = np_ / world_;
      if (zero1_) CUDA_CHECK(cudaMemsetAsync(norm_.get(), 0, world_ * sizeof(float), stream_));
      for (int r = zero1_ ? comm_->rank() : 0; r < (zero1_ ? comm_->rank() + 1 : world_); r++)
        kern::global_norm(norm_.get() + r, norm_scratch_.get(), grads_.get() + r * shard, shard, stream_);
      if (zero1_) comm_->all_reduce_sum(norm_.get(), world_, llm::CommType::kFp32, (void*)stream_);
    }
    grads_reduced_ = false;
    // each rank's loss was a mean, so the mean gradient is sum / world: folded (with the clip factor) into the
    // AdamW gradient scale instead of an extra pass
    launch_kernel(clip_scale_kernel<kern::AdamWStep>, dim3(1), dim3(1), 0, stream_, &step_dev_.get()->adamw,
                  &results_dev_.get()->norm, (const float*)norm_.get(), world_, world_, grad_clip);
    for_each_trainable_piece([&](int k, size_t a, size_t b) {
      const size_t s = a - opt_begin_;  // index into the own-shard arrays
      kern::adamw_update_device(params_.get() + a, kBf16 ? master_.get() + s : (float*)nullptr, grads_.get() + a,
                                m_.get() + s, v_.get() + s, b - a, (const kern::AdamWStep*)&step_dev_.get()->adamw,
                                hp.beta1, hp.beta2, hp.eps, hp.decay[k] ? hp.weight_decay : 0.0f,
                                (const uint64_t*)&step_dev_.get()->seed[k], stream_, 512, a - offsets_[k]);
    });
    if (zero1_) comm_->all_gather(params_.get(), np_, type, (void*)stream_);
    CUDA_CHECK(cudaMemcpyAsync(results_host_.get(), results_dev_.get(), sizeof(StepResults), cudaMemcpyDeviceToHost,
                               stream_));
  }

  // Waits for the stream and reads what the last update_queued left (loss sum of the step, gradient norm).
  StepResults read_results() {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    return *results_host_.get();
  }

 protected:
  double* loss_sum_dev() const { return &results_dev_.get()->loss_sum; }
  floatX* p(ParamTensor k) const { return params_.get() + offsets_[k]; }
  floatX* g(ParamTensor k) const { return grads_.get() + offsets_[k]; }

  // fn(k, a, b) for every non-empty [a, b) = tensor k ∩ the own optimizer range (absolute indices), in order.
  template <class Fn>
  void for_each_own_piece(Fn fn) const {
    for (int k = 0; k < llm::kNumParamTensors; k++) {
      const size_t a = std::max(offsets_[k], opt_begin_), b = std::min(offsets_[k] + sizes_[k], opt_end_);
      if (a < b) fn(k, a, b);
    }
  }
  // The same for the trainable part only: each run of consecutive trainable layers of a tensor is one piece.
  template <class Fn>
  void for_each_trainable_piece(Fn fn) const {
    const int L = cfg_.num_layers;
    for (int k = 0; k < llm::kNumParamTensors; k++) {
      const int layers = per_layer((ParamTensor)k) ? L : 1;
      const size_t per = sizes_[k] / layers;
      for (int l0 = 0, l1; l0 < layers; l0 = l1) {
        for (l1 = l0 + 1; l1 < layers && trainable((ParamTensor)k, l1) == trainable((ParamTensor)k, l0);) l1++;
        if (!trainable((ParamTensor)k, l0)) continue;
        const size_t a = std::max(offsets_[k] + l0 * per, opt_begin_), b = std::min(offsets_[k] + l1 * per, opt_end_);
        if (a < b) fn(k, a, b);
      }
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
      const bool blocks = per_layer((ParamTensor)k);
      if (blocks != (l >= 0)) continue;
      const size_t per = blocks ? sizes_[k] / L : sizes_[k];
      comm_->all_reduce_sum(grads_.get() + offsets_[k] + (blocks ? (size_t)l * per : 0), per, type,
                            (void*)comm_stream_);
    }
    CUDA_CHECK(cudaEventRecord(comm_done_, comm_stream_));
    grads_reduced_ = true;
  }

  // bf16 without a master: w (n_ floats) rounded to nearest into the params through a bounded fp32 staging buffer.
  void round_into_params(const float* w) {
    const size_t chunk = std::min<size_t>(n_, (size_t)1 << 22);  // 16 MiB at most
    DeviceArray<float> staging(chunk);
    for (size_t a = 0; a < n_; a += chunk) {
      const size_t len = std::min(chunk, n_ - a);
      CUDA_CHECK(cudaMemcpy(staging.get(), w + a, len * sizeof(float), cudaMemcpyHostToDevice));
      launch_kernel(params_from_master_kernel<floatX>, dim3(kern::grid_stride_blocks(len, 256)), dim3(256), 0,
                    stream_, params_.get() + a, (const float*)staging.get(), len, (uint64_t)0, (size_t)0);
      CUDA_CHECK(cudaStreamSynchronize(stream_));  // before the next chunk overwrites the staging buffer
    }
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

  GPT2Config cfg_;
  llm::Comm* comm_;
  cudaStream_t stream_;
  cudaStream_t own_stream_ = nullptr;    // created when no stream was given: the stream of every step
  int world_ = 1;
  bool zero1_ = false;
  size_t np_ = 0;                        // n_ padded to a multiple of world_ (params_ / grads_ size)
  size_t opt_begin_ = 0, opt_end_ = 0;   // the optimizer range of this rank (ZeRO-1 shard, else [0, np_))
  cudaStream_t comm_stream_ = nullptr;   // ZeRO-0 gradient all-reduce, overlapped with backward
  cudaEvent_t grads_ready_ = nullptr, comm_done_ = nullptr;
  bool grads_reduced_ = false;           // backward already queued this step's all-reduce
  bool frozen_ = false;                  // set_trainable: nothing trains (no gradients / m / v, ever)
  bool forward_only_ = false;            // set_forward_only: bf16 set_weights keeps no master
  DeviceArray<float> master_, m_, v_;    // own optimizer range only
  std::array<size_t, llm::kNumParamTensors> sizes_{}, offsets_{};
  size_t n_ = 0;
  DeviceArray<floatX> params_, grads_;
  DeviceArray<float> norm_, norm_scratch_;
  std::vector<char> trainable_;  // (kNumParamTensors, L): [k·L + layer]
  DeviceArray<StepScalars> step_dev_;
  PinnedArray<StepScalars> step_host_{1};
  cudaEvent_t step_staged_ = nullptr;    // after the copy out of step_host_
  DeviceArray<StepResults> results_dev_;
  PinnedArray<StepResults> results_host_{1};
};

}  // namespace gpu
