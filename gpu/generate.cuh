// generate.cuh — `train_gpt2cu generate`: GPT-2 inference on the device with a KV cache, behind the shared loop.
//
// Why here: everything that is not "logits of the next token" — flags, tokenizer, prompt checks, the crop rule,
// sampling, streaming, tok/s — is host/generate.h, shared with `gpt2_cpu generate`, so the two programs sample
// the same tokens from the same logits. This file only supplies the device LogitsModel:
//   prefill(tokens, n): the training forward's kernels over n rows at positions 0..n-1 (flash attention over the
//                       rows), storing each layer's k/v rows in the cache (L, maxT, C) for k and for v;
//   step(token)       : one row at position pos: qkv = one matrix-vector product, its k/v appended to the cache,
//                       then kernels/attention_decode.cuh (one query over cache rows 0..pos) — O(1) new rows;
//   only the last row goes through the LM head (1 × Vp logits, widened to fp32 on the host).
// --no-kv-cache: every step re-runs prefill over the whole context (the uncached reference on the device).
// Storage bf16 (default, like training) or fp32 (--precision fp32: same math as gpt2_cpu up to summation order,
// so greedy tokens are identical — tested on the CUDA-on-CPU build). Buffers are allocated once for maxT rows.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gpu/attention_dispatch.cuh"
#include "gpu/gpt2_gpu.cuh"  // DeviceArray
#include "host/error.h"
#include "host/generate.h"
#include "host/program.h"
#include "kernels/attention_decode.cuh"

namespace gpu {

template <class floatX>
class GenerateModel final : public llm::LogitsModel {
 public:
  GenerateModel(const GPT2Config& cfg, const std::vector<float>& params, bool kv_cache)
      : cfg_(cfg), kv_(kv_cache), off_(llm::param_offsets(cfg)) {
    const size_t n = llm::num_parameters(cfg), C = cfg.channels, T = cfg.max_seq_len, L = cfg.num_layers;
    if (params.size() != n) llm::fail("generate: got ", params.size(), " parameters, the config needs ", n);
    kern::attention_check_shape("generate", 1, cfg.max_seq_len, cfg.channels, cfg.num_heads);
    {  // weights: fp32 on the host -> floatX on the device (round to nearest)
      std::vector<floatX> tmp(n);
      for (size_t i = 0; i < n; i++) tmp[i] = kern::from_float<floatX>(params[i]);
      params_.resize(n);
      CUDA_CHECK(cudaMemcpy(params_.get(), tmp.data(), n * sizeof(floatX), cudaMemcpyHostToDevice));
    }
    kcache_.resize(L * T * C);
    vcache_.resize(L * T * C);
    x_.resize(T * C);
    r2_.resize(T * C);
    ln_.resize(T * C);
    atty_.resize(T * C);
    branch_.resize(T * C);
    qkv_.resize(T * 3 * C);
    fch_.resize(T * 4 * C);
    logits_.resize(cfg.padded_vocab_size);
    mean_.resize(T);
    rstd_.resize(T);
    lse_.resize((size_t)cfg.num_heads * T);
    inputs_.resize(T);
    logits_host_.resize(cfg.padded_vocab_size);
    ctx_.reserve(T);  // a decode step allocates nothing on the host
  }

  const GPT2Config& config() const override { return cfg_; }

  // The prefill's attention (gpu/attention_path.h; no dropout in generation): `requested` itself or auto's choice,
  // llm::Error when it cannot run. Default: portable.
  AttentionPath set_attention(AttentionPath requested) {
    const bool bf16 = !std::is_same<floatX, float>::value;
    attention_ = resolve_attention(requested, attention_facts(cfg_.channels, cfg_.num_heads, bf16, 0.0f));
    return attention_;
  }

  const float* prefill(const int* tokens, int n) override {
    if (n < 1 || n > cfg_.max_seq_len) llm::fail("prefill: ", n, " tokens, expected 1..", cfg_.max_seq_len);
    pos_ = 0;
    ctx_.assign(tokens, tokens + n);
    return forward_rows(tokens, n);
  }

  const float* step(int token) override {
    if ((int)ctx_.size() >= cfg_.max_seq_len)
      llm::fail("step: the context is full (", cfg_.max_seq_len, " positions); re-prefill a cropped context");
    ctx_.push_back(token);
    if (!kv_) {  // uncached: the whole context again from position 0
      pos_ = 0;
      return forward_rows(ctx_.data(), (int)ctx_.size());
    }
    return forward_rows(&token, 1);
  }

 private:
  floatX* p(llm::ParamTensor k) const { return params_.get() + off_[k]; }

  // Rows tokens[0..n) at positions pos_..pos_+n-1 (n > 1 only from position 0); returns the last row's logits.
  const float* forward_rows(const int* tokens, int n) {
    const int L = cfg_.num_layers, C = cfg_.channels, NH = cfg_.num_heads, T = cfg_.max_seq_len;
    const int V = cfg_.vocab_size, Vp = cfg_.padded_vocab_size;
    const size_t c = C;
    if (n > 1 && pos_ != 0) llm::fail("generate: a multi-row forward must start at position 0");
    for (int i = 0; i < n; i++)
      if (tokens[i] < 0 || tokens[i] >= V) llm::fail("token id ", tokens[i], " outside the vocabulary [0, ", V, ")");
    CUDA_CHECK(cudaMemcpy(inputs_.get(), tokens, n * sizeof(int), cudaMemcpyHostToDevice));
    // x = wte[tokens] + wpe[pos_ .. pos_+n)
    kern::encoder_forward(x_.get(), inputs_.get(), p(llm::kWte), p(llm::kWpe) + (size_t)pos_ * c, 1, n, C, stream_);
    kern::layernorm_forward(ln_.get(), mean_.get(), rstd_.get(), x_.get(), p(llm::kLn1w), p(llm::kLn1b), n, C, stream_);
    for (int l = 0; l < L; l++) {
      floatX* kc = kcache_.get() + (size_t)l * T * c;
      floatX* vc = vcache_.get() + (size_t)l * T * c;
      // attention: r2 = x + attproj(attn(ln1(x)))
      kern::matmul_forward(qkv_.get(), (floatX*)nullptr, ln_.get(), p(llm::kQkvw) + l * 3 * c * c,
                           cfg_.qkv_bias ? p(llm::kQkvb) + l * 3 * c : (const floatX*)nullptr, n, C, 3 * C, stream_);
      kern::kv_cache_append(kc, vc, qkv_.get(), n, pos_, T, C, stream_);
      if (n == 1) {
        kern::attention_decode(atty_.get(), qkv_.get(), kc, vc, pos_ + 1, C, NH, stream_);
      } else {
        gpu::attention_forward(attention_, atty_.get(), lse_.get(), qkv_.get(), 1, n, C, NH, llm::DropoutSpec{},
                               stream_);
      }
      kern::matmul_forward(branch_.get(), (floatX*)nullptr, atty_.get(), p(llm::kAttprojw) + l * c * c,
                           p(llm::kAttprojb) + l * c, n, C, C, stream_);
      kern::fused_residual_layernorm_forward(r2_.get(), ln_.get(), mean_.get(), rstd_.get(), x_.get(), branch_.get(),
                                             p(llm::kLn2w) + l * c, p(llm::kLn2b) + l * c, n, C, stream_);
      // MLP: x = r2 + fcproj(gelu(fc(ln2(r2)))), normalised by the next ln1 (or lnf after the last layer)
      kern::matmul_forward(fch_.get(), (floatX*)nullptr, ln_.get(), p(llm::kFcw) + l * 4 * c * c,
                           p(llm::kFcb) + l * 4 * c, n, C, 4 * C, stream_);
      kern::gelu_forward(fch_.get(), fch_.get(), (size_t)n * 4 * c, stream_);
      kern::matmul_forward(branch_.get(), (floatX*)nullptr, fch_.get(), p(llm::kFcprojw) + l * 4 * c * c,
                           p(llm::kFcprojb) + l * c, n, 4 * C, C, stream_);
      const bool last = l == L - 1;
      kern::fused_residual_layernorm_forward(x_.get(), ln_.get(), mean_.get(), rstd_.get(), r2_.get(), branch_.get(),
                                             last ? p(llm::kLnfw) : p(llm::kLn1w) + (l + 1) * c,
                                             last ? p(llm::kLnfb) : p(llm::kLn1b) + (l + 1) * c, n, C, stream_);
    }
    pos_ += n;
    // LM head for the last row only: logits (1, Vp)
    kern::matmul_forward(logits_.get(), (floatX*)nullptr, ln_.get() + (size_t)(n - 1) * c,
                         cfg_.tied_head ? p(llm::kWte) : p(llm::kLmHead), (const floatX*)nullptr, 1, C, Vp, stream_);
    if (std::is_same<floatX, float>::value) {
      CUDA_CHECK(cudaMemcpy(logits_host_.data(), logits_.get(), Vp * sizeof(float), cudaMemcpyDeviceToHost));
    } else {
      logits_raw_.resize(Vp);
      CUDA_CHECK(cudaMemcpy(logits_raw_.data(), logits_.get(), Vp * sizeof(floatX), cudaMemcpyDeviceToHost));
      for (int i = 0; i < Vp; i++) logits_host_[i] = kern::to_float(logits_raw_[i]);
    }
    return logits_host_.data();
  }

  GPT2Config cfg_;
  bool kv_;
  std::array<size_t, llm::kNumParamTensors> off_;
  cudaStream_t stream_ = 0;
  AttentionPath attention_ = AttentionPath::kPortable;  // the prefill's (decode steps use attention_decode)
  DeviceArray<floatX> params_, kcache_, vcache_, x_, r2_, ln_, atty_, branch_, qkv_, fch_, logits_;
  DeviceArray<float> mean_, rstd_, lse_;
  DeviceArray<int> inputs_;
  std::vector<float> logits_host_;
  std::vector<floatX> logits_raw_;  // bf16 logits before widening
  std::vector<int> ctx_;  // the tokens fed since the last prefill (the uncached path re-runs them)
  int pos_ = 0;           // cache rows filled
};

// The `generate` verb of train_gpt2cu: gpt2_cpu's flags (host/generate.h) plus --precision bf16|fp32 and
// --attention auto|flash|cudnn|portable (the prefill's attention; printed on stderr, stdout stays the sample).
// check_device runs before any device allocation (the real build fails there without a GPU).
inline void add_generate_command(llm::Program& program, const std::function<void()>& check_device) {
  struct Flags {
    std::string precision = "bf16", attention = "auto";
  };
  auto f = std::make_shared<Flags>();
  auto factory = [f, check_device](const GPT2Config& c, std::vector<float>&& params,
                                   bool kv_cache) -> std::unique_ptr<llm::LogitsModel> {
    const AttentionPath requested = parse_attention_path(f->attention);
    check_device();
    auto pick = [&](auto model) -> std::unique_ptr<llm::LogitsModel> {
      const AttentionPath chosen = model->set_attention(requested);
      std::fprintf(stderr, "train_gpt2cu: attention %s\n", attention_choice(chosen, requested).c_str());
      return model;
    };
    if (f->precision == "fp32") return pick(std::make_unique<GenerateModel<float>>(c, params, kv_cache));
    return pick(std::make_unique<GenerateModel<__nv_bfloat16>>(c, params, kv_cache));
  };
  CLI::App& app = llm::add_generate_command(program, factory);
  app.add_option("--precision", f->precision, "bf16 (weights, activations and KV cache in bf16) or fp32")
      ->check(CLI::IsMember({"bf16", "fp32"}))
      ->capture_default_str();
  app.add_option("--attention", f->attention, "prefill attention: auto, flash, cudnn or portable")
      ->check(CLI::IsMember({"auto", "flash", "cudnn", "portable"}))
      ->capture_default_str();
}

}  // namespace gpu
