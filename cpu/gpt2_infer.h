// gpt2_infer.h — CPU inference for generation: a KV-cached GPT-2 and the uncached reference path.
//
// Why a KV cache: without it every new token re-runs the whole context (O(T) rows per token). With it, prefill
// runs the prompt once and stores each layer's keys and values; a decode step then embeds ONE token at the next
// absolute position, appends its k/v to the cache and attends over all cached positions — the same math, so the
// same tokens as the uncached path (tested). The cache is (L, NH, max_seq_len, hs) for k and for v (each head's
// rows contiguous, so attention streams them); prefill resets it. Context beyond max_seq_len: see the crop rule in host/generate.h.
//
// Decode steps use a matrix-vector product parallelised over output rows (the weights are read once per token, so
// decoding is memory-bound; cpu/infer_matrix.h): fp32 prefill uses the reference GEMM (ref::matmul_forward).
// A decode step runs as ONE parallel region (forward_one): each thread keeps its own copy of the residual row and
// does the small row work (LayerNorm, residual add, activation quantisation) itself, the threads split each
// product's rows and the attention heads, and they meet at 5 barriers per layer (cpu/spin_barrier.h) instead of
// forking and joining an OpenMP team for every product with the row work serial in between.
// Weight formats (--weights): fp32 (the parameters as loaded), bf16, int8 with per-row scales or q4 (4-bit blocks)
// for the five matrix kinds (qkv, attention projection, fc, fc projection, LM head) — 1/2, 1/4, ~1/7 of the bytes
// per token; embeddings, LayerNorms and biases stay fp32. int8 / q4 products quantise their input activations
// to int8 (cpu/infer_qdot.h); everything else is fp32.
// use_cache = false: every step re-runs the whole context through this same code (the no-cache benchmark of
// each format); UncachedGPT2 below is the independent fp32 reference.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "cpu/gpt2_model.h"
#include "cpu/infer_matrix.h"
#include "cpu/spin_barrier.h"
#include "host/generate.h"

namespace llm {

class KVCacheGPT2 : public LogitsModel {
 public:
  // params: num_parameters(config) floats
  KVCacheGPT2(const GPT2Config& config, std::vector<float>&& params, WeightFormat format = WeightFormat::kFp32,
              bool use_cache = true);
  const GPT2Config& config() const override { return c_; }
  const float* prefill(const int* tokens, int n) override;
  const float* step(int token) override;
  int position() const { return pos_; }  // tokens currently in the cache
  const float* params() const { return params_.data(); }
  size_t weight_bytes_per_token() const;  // bytes of the matrices one decode step streams

 private:
  // Feeds rows tokens[0..n) at positions pos_..pos_+n-1 through every layer; returns the last row's logits.
  const float* forward_rows(const int* tokens, int n);
  // The same for one row (a decode step): one parallel region for the whole token; see the .cpp.
  const float* forward_one(int token);
  const float* p(ParamTensor k) const { return params_.data() + off_[k]; }

  GPT2Config c_;
  std::vector<float> params_;
  bool use_cache_;
  std::vector<InferMatrix> qkv_w_, attproj_w_, fc_w_, fcproj_w_;  // one per layer
  InferMatrix head_w_;
  std::vector<int> ctx_;  // tokens since the last prefill (re-run by the no-cache mode)
  std::array<size_t, kNumParamTensors> off_{};
  std::vector<float> kcache_, vcache_;                // (L, NH, maxT, hs): each head's rows contiguous
  // row t of head h of layer l in a cache
  float* kv_row(std::vector<float>& cache, int l, int h, int t) {
    return cache.data() + (((size_t)l * c_.num_heads + h) * c_.max_seq_len + t) * (c_.channels / c_.num_heads);
  }
  std::vector<float> x_, ln_, qkv_, atty_, tmp_, fch_;  // (n,C) (n,C) (n,3C) (n,C) (n,C) (n,4C)
  std::vector<float> mean_, rstd_, scores_;           // (n) (n) (threads, maxT)
  std::vector<float> logits_;                         // (Vp)
  std::vector<float> xt_, lnt_;                       // forward_one: (threads, C) each thread's residual / LN row
  SpinBarrier barrier_;
  int pos_ = 0;
};

// The uncached path: every call runs GPT2Model::forward over the whole context (the training model's code, an
// independent implementation of the same math).
class UncachedGPT2 : public LogitsModel {
 public:
  UncachedGPT2(const GPT2Config& config, const std::vector<float>& params);
  const GPT2Config& config() const override { return model_.config(); }
  const float* prefill(const int* tokens, int n) override;
  const float* step(int token) override;

 private:
  const float* run();
  GPT2Model model_;
  std::vector<int> ctx_;
};

// The factory gpt2_cpu gives host/generate.h's add_generate_command.
std::unique_ptr<LogitsModel> make_cpu_logits_model(const GPT2Config& config, std::vector<float>&& params, bool kv_cache);

// With a weight format: fp32 + kv_cache false is UncachedGPT2; any other combination is KVCacheGPT2.
std::unique_ptr<LogitsModel> make_cpu_logits_model(const GPT2Config& config, std::vector<float>&& params, bool kv_cache,
                                                   WeightFormat format);

}  // namespace llm
