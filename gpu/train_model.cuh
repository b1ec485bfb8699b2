// train_model.cuh — the device GPT-2 (gpu/gpt2_gpu.cuh) behind the shared driver's llm::TrainModel interface,
// plus device detection and the MFU estimate.
//
// Why separate from gpt2_gpu.cuh: this is the glue between the host training loop (host/train_loop.h) and the
// device model: fp32 weights in/out for checkpoints, the llm.c-style AdamW settings from the flags, sampling
// through the fixed (B, T) buffers, and the progress line's MFU. Tests use it to run exactly the program's step.
#pragma once
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gpu/gpt2_gpu.cuh"
#include "gpu/step_graph.cuh"
#include "kernels/step_profile.cuh"
#include "host/cli.h"
#include "host/comm.h"
#include "host/gpt2_init.h"         // init_gpt2_params: the same random init as the CPU reference
#include "host/optimizer_config.h"  // decay_mask
#include "host/train_loop.h"

namespace gpu {

enum class Precision { kFp32, kBf16 };
inline const char* precision_name(Precision p) { return p == Precision::kBf16 ? "bf16" : "fp32"; }

// Peak dense tensor-core throughput (bf16) or plain fp32 throughput of the device, in FLOP/s; 0 if unknown.
// Datasheet numbers (dense, no sparsity): A100 312 / 19.5 TFLOPS; H100 SXM and H200 989 / 67; H100 PCIe 756 / 51.
inline double peak_flops(const std::string& device_name, Precision p) {
  const bool bf16 = p == Precision::kBf16;
  auto has = [&](const char* s) { return device_name.find(s) != std::string::npos; };
  if (has("H200")) return bf16 ? 989.4e12 : 66.9e12;
  if (has("H100")) return has("PCIe") ? (bf16 ? 756.0e12 : 51.2e12) : (bf16 ? 989.4e12 : 66.9e12);
  if (has("A100")) return bf16 ? 312.0e12 : 19.5e12;
  return 0.0;
}

// Model FLOPs per trained token (forward + backward): 6 per parameter (each weight does a multiply-add
// forward and two backward) plus attention's QKᵀ and AV, 12·L·C·T (nanoGPT / PaLM appendix B estimate).
inline double flops_per_token(const llm::GPT2Config& c, int T) {
  return 6.0 * (double)llm::num_parameters(c) + 12.0 * c.num_layers * (double)c.channels * T;
}

// --matmul auto|cublaslt|own and --tf32 of train and eval. auto: cuBLASLt where the build has it (nvcc), else the
// own GEMM; cuBLASLt is then REQUIRED: a declined or failed call is an llm::Error naming the problem, never a
// silent switch to the ~50x slower own GEMM. own: the own GEMM on purpose. --tf32: fp32 matmuls on TF32 tensor
// cores (cuBLASLt only; off by default, so fp32 keeps its parity with gpt2_cpu).
inline kern::MatmulOptions resolve_matmul(const std::string& choice, bool tf32, Precision p) {
  kern::MatmulOptions m;
  if (choice == "own") m.backend = kern::MatmulBackend::Own;
  else if (choice == "auto") m.backend = kern::matmul_vendor() ? kern::MatmulBackend::CublasLt : kern::MatmulBackend::Own;
  else if (choice == "cublaslt") m.backend = kern::MatmulBackend::CublasLt;
  else llm::fail("--matmul must be auto, cublaslt or own (got '", choice, "')");
  if (m.backend == kern::MatmulBackend::CublasLt && !kern::matmul_vendor())
    llm::fail("--matmul cublaslt: this build has no cuBLASLt (train_gpt2cu_cpu runs the own GEMM: --matmul own)");
  if (tf32 && p != Precision::kFp32) llm::fail("--tf32 applies to --precision fp32 (bf16 matmuls use tensor cores already)");
  if (tf32 && m.backend == kern::MatmulBackend::Own)
    llm::fail("--tf32 needs cuBLASLt (the own GEMM multiplies in plain fp32)");
  m.tf32 = tf32;
  return m;
}
inline std::string matmul_name(const kern::MatmulOptions& m) {
  const char* b = m.backend == kern::MatmulBackend::Own ? "own" : m.backend == kern::MatmulBackend::CublasLt ? "cublaslt" : "auto";
  return std::string(b) + (m.tf32 ? " (tf32)" : "");
}

struct DeviceInfo {
  std::string name;
  bool real_gpu = false;  // false on the CUDA-on-CPU layer
};

// The current device (cudaSetDevice picks it: LOCAL_RANK under data parallel).
inline DeviceInfo device_info() {
  DeviceInfo d;
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  d.name = prop.name;
#ifdef __CUDACC__
  d.real_gpu = true;
#endif
  return d;
}

template <class floatX>
class GpuTrainModel final : public llm::TrainModel {
 public:
  static constexpr Precision kPrecision = std::is_same<floatX, float>::value ? Precision::kFp32 : Precision::kBf16;

  // comm: the data-parallel group (nullptr: a single process); zero_stage 0|1 (ZeRO-1 needs world > 1 to matter).
  // attention: --attention (auto resolves here, for this config's head size and dropout; llm::Error if impossible).
  // cuda_graph: --cuda-graph (gpu/step_graph.cuh; used when the run allows it, see graph_off_reason).
  // profile_step: --profile-step (> 0: that step of this session runs eagerly under kern::StepProfile).
  GpuTrainModel(const llm::GPT2Config& cfg, const llm::TrainOptions& o, bool recompute, const DeviceInfo& dev,
                llm::Comm* comm = nullptr, int zero_stage = 0, AttentionPath attention = AttentionPath::kPortable,
                kern::MatmulOptions matmul = {}, bool cuda_graph = false, int profile_step = 0)
      : cfg_(cfg),
        recompute_(recompute),
        dev_(dev),
        comm_(comm ? comm : &local_),
        model_(cfg, o.batch_size, o.seq_len, recompute, comm_, zero_stage),
        graphs_(model_.stream(), cuda_graph, graph_off_reason(cfg, comm_->world_size())),
        profile_step_(profile_step) {
    hp_.beta1 = o.beta1;
    hp_.beta2 = o.beta2;
    hp_.eps = o.eps;
    hp_.weight_decay = o.weight_decay;
    hp_.decay = llm::decay_mask(o.weight_decay_all ? llm::DecayMode::kAll : llm::DecayMode::kMatrices);
    hp_.seed = o.seed;
    attention_requested_ = attention;
    model_.set_attention(attention);
    model_.set_matmul(matmul);
    peak_ = dev.real_gpu ? peak_flops(dev.name, kPrecision) : 0.0;
    flops_per_token_ = flops_per_token(cfg, o.seq_len);
  }

  GPT2<floatX>& model() { return model_; }
  // eval / hellaswag: forward passes only (no optimizer state on the device; GPT2Params::set_forward_only).
  void set_forward_only() { model_.set_forward_only(); }

  size_t num_params() const override { return model_.num_params(); }
  std::string describe() const override {
    std::string s = std::string("precision ") + precision_name(kPrecision) + " | device " + dev_.name;
    if (peak_ > 0) s += " (peak " + std::to_string((int)std::lround(peak_ / 1e12)) + " TFLOPS)";
    s += recompute_ ? " | recompute gelu" : "";
    s += " | matmul " + matmul_name(model_.matmul());
    s += " | attention " + attention_choice(model_.attention(), attention_requested_);
    if (model_.world_size() > 1)
      s += " | data parallel: " + std::to_string(model_.world_size()) + " ranks, ZeRO-" + (model_.zero1() ? "1" : "0");
    return s;
  }
  // Why the step cannot be captured for this run ("" = it can).
  static std::string graph_off_reason(const llm::GPT2Config& cfg, int world) {
    if (world > 1) return "data parallel: the collectives run eagerly";
    if (cfg.dropout > 0.0f) return "dropout: the mask seed of each micro-step is a kernel argument";
    return "";
  }
  const StepGraphs& graphs() const { return graphs_; }
  std::string fingerprint_extra() const override { return std::string("precision=") + precision_name(kPrecision); }

  void init_random(uint64_t seed) override {
    std::vector<float> w(llm::num_parameters(cfg_));
    llm::init_gpt2_params(cfg_, seed, w.data());
    model_.set_weights(w.data());
  }
  void set_weights(const std::vector<float>& w) override { model_.set_weights(w.data()); }
  void get_weights(std::vector<float>* w) override {
    w->resize(model_.num_params());
    model_.get_weights(w->data());
  }
  void set_optimizer_state(const std::vector<float>& m, const std::vector<float>& v, int64_t step) override {
    model_.set_optimizer_state(m.data(), v.data());
    if (kPrecision == Precision::kBf16 && step > 0) {  // re-derive the bf16 params exactly as step `step` rounded them
      std::vector<float> w;
      get_weights(&w);
      model_.set_weights(w.data(), step, hp_.seed);
    }
  }
  void get_optimizer_state(std::vector<float>* m, std::vector<float>* v) override {
    m->resize(model_.num_params());
    v->resize(model_.num_params());
    model_.get_optimizer_state(m->data(), v->data());
  }

  float eval_loss(const int* x, const int* y, int B, int T) override {
    check_shape(B, T);
    return model_.forward(x, y, false, 0);
  }
  void token_losses(float* losses, const int* x, const int* y, int B, int T) override {
    check_shape(B, T);
    model_.forward(x, y, false, 0);
    model_.get_losses(losses);
  }
  // The step (zero_grad, train_micro_step..., update) queues its work on the model's stream without waiting
  // (forward/backward/update have no host synchronisation; the batches and the update's scalars go through pinned
  // memory); each piece runs through graphs_ (captured once, replayed). Unless defer_step_results() was called,
  // train_micro_step and update then wait and return the loss / norm; deferred, they return 0 and the driver calls
  // read_step_results() once after update().
  void zero_grad() override {
    const auto t0 = std::chrono::steady_clock::now();
    profiling_ = profile_step_ > 0 && steps_ + 1 == profile_step_;
    if (profiling_) profile_.begin_step(model_.stream());
    model_.zero_grad();
    step_host_ms_ = since(t0);
  }
  float train_micro_step(const int* x, const int* y, int B, int T, uint64_t dropout_seed, float loss_scale,
                         bool last_micro_step) override {
    check_shape(B, T);
    const auto t0 = std::chrono::steady_clock::now();
    model_.stage(x, y, true);
    uint32_t scale_bits;
    std::memcpy(&scale_bits, &loss_scale, sizeof scale_bits);
    queue((uint64_t)scale_bits << 1 | (last_micro_step ? 1u : 0u), [&] {
      model_.forward_queued(true, dropout_seed, true, loss_scale);
      model_.accumulate_loss();
      model_.backward(last_micro_step);
    });
    step_host_ms_ += since(t0);
    return deferred_ ? 0.0f : model_.read_loss();
  }
  double update(float lr, int64_t t, float grad_clip) override {
    const auto t0 = std::chrono::steady_clock::now();
    model_.stage_update(lr, t, hp_);
    uint32_t clip_bits;
    std::memcpy(&clip_bits, &grad_clip, sizeof clip_bits);
    queue(1ull << 40 | clip_bits, [&] { model_.update_queued(grad_clip, hp_); });
    step_host_ms_ += since(t0);
    const bool profiled = profiling_;
    if (profiling_) {
      profile_.end_step();
      profile_line_ = "step profile (step " + std::to_string(steps_ + 1) + ", eager): " +
                      kern::StepProfile::describe(profile_.read());
      profiling_ = false;
    }
    if (++steps_ > 2 && !profiled) {  // the first two steps warm up and capture; the profiled one waits
      host_ms_sum_ += step_host_ms_;
      host_steps_++;
    }
    return deferred_ ? 0.0 : model_.read_results().norm;
  }
  bool defer_step_results() override { return deferred_ = true; }
  void read_step_results(double* loss_sum, double* norm) override {
    const StepResults r = model_.read_results();
    *loss_sum = r.loss_sum;
    *norm = r.norm;
  }
  // "cuda graph: on: ... | host 0.040 ms per step (...)": the host time spent issuing a step's work (zero_grad,
  // the micro-steps and update, without the wait for the results), mean over the steps after the first two
  // (and not the --profile-step one, which waits); then "| step profile (step N, eager): matmul ..% | attention
  // ..% | other ..% of .. ms" when --profile-step ran.
  std::string summary() const override {
    std::string s = "cuda graph: " + graphs_.status();
    if (host_steps_ > 0) {
      char buf[128];
      std::snprintf(buf, sizeof buf, " | host %.3f ms per step (issuing its work; mean of %lld steps after the first 2)",
                    host_ms_sum_ / (double)host_steps_, (long long)host_steps_);
      s += buf;
    }
    if (!profile_line_.empty()) s += " | " + profile_line_;
    return s;
  }

  // Row 0 of the fixed (B, T) batch holds the context (the rest is padding that causal attention never sees).
  const float* next_token_logits(const int* ids, int len) override {
    const int B = model_.B(), T = model_.T();
    if (len < 1 || len > T) llm::fail("sampling: context length ", len, " not in [1, ", T, "]");
    ctx_.assign((size_t)B * T, 0);
    std::copy(ids, ids + len, ctx_.begin());
    model_.forward(ctx_.data(), nullptr, false, 0);
    row_.resize(cfg_.padded_vocab_size);
    model_.get_logits_row(0, len - 1, row_.data());
    return row_.data();
  }

  double mfu_percent(double ms, int64_t tokens) const override {
    if (peak_ <= 0 || ms <= 0) return -1.0;  // unknown device / the CPU layer: "n/a"
    return 100.0 * flops_per_token_ * (double)tokens / (ms / 1000.0) / peak_;
  }

 private:
  static double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  // A step piece: through the CUDA graphs, or eagerly in the profiled step (events time its launchers).
  template <class Fn>
  void queue(uint64_t key, Fn&& fn) {
    if (profiling_) return fn();
    graphs_.run(key, fn);
  }
  void check_shape(int B, int T) const {
    if (B != model_.B() || T != model_.T())
      llm::fail("batch shape ", B, "x", T, " differs from the allocated ", model_.B(), "x", model_.T());
  }

  llm::GPT2Config cfg_;
  bool recompute_;
  DeviceInfo dev_;
  llm::LocalComm local_;  // one process (no comm given)
  llm::Comm* comm_;
  GPT2<floatX> model_;
  AttentionPath attention_requested_ = AttentionPath::kPortable;
  AdamWSettings hp_;
  StepGraphs graphs_;
  bool deferred_ = false;
  double step_host_ms_ = 0.0, host_ms_sum_ = 0.0;
  int64_t steps_ = 0, host_steps_ = 0;
  int profile_step_ = 0;
  bool profiling_ = false;
  kern::StepProfile profile_;
  std::string profile_line_;
  double peak_ = 0.0, flops_per_token_ = 0.0;
  std::vector<int> ctx_;
  std::vector<float> row_;
};

inline std::unique_ptr<llm::TrainModel> make_train_model(Precision p, const llm::GPT2Config& cfg,
                                                         const llm::TrainOptions& o, bool recompute,
                                                         const DeviceInfo& dev, llm::Comm* comm = nullptr,
                                                         int zero_stage = 0,
                                                         AttentionPath attention = AttentionPath::kPortable,
                                                         kern::MatmulOptions matmul = {}, bool cuda_graph = false,
                                                         int profile_step = 0) {
  if (p == Precision::kBf16)
    return std::make_unique<GpuTrainModel<__nv_bfloat16>>(cfg, o, recompute, dev, comm, zero_stage, attention, matmul,
                                                          cuda_graph, profile_step);
  return std::make_unique<GpuTrainModel<float>>(cfg, o, recompute, dev, comm, zero_stage, attention, matmul,
                                                cuda_graph, profile_step);
}

// The model of `eval` and `hellaswag`: make_train_model's, declared forward-only before its weights are set, so it
// never allocates gradients, AdamW moments or (bf16) fp32 master weights.
inline std::unique_ptr<llm::TrainModel> make_forward_model(Precision p, const llm::GPT2Config& cfg,
                                                           const llm::TrainOptions& o, const DeviceInfo& dev,
                                                           AttentionPath attention = AttentionPath::kPortable,
                                                           kern::MatmulOptions matmul = {}) {
  if (p == Precision::kBf16) {
    auto m = std::make_unique<GpuTrainModel<__nv_bfloat16>>(cfg, o, false, dev, nullptr, 0, attention, matmul);
    m->set_forward_only();
    return m;
  }
  auto m = std::make_unique<GpuTrainModel<float>>(cfg, o, false, dev, nullptr, 0, attention, matmul);
  m->set_forward_only();
  return m;
}

}  // namespace gpu
