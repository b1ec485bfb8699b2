#include "cpu/gpt2_infer.h"

#include <omp.h>

#include <cmath>
#include <cstring>

#include "cpu/ops.h"
#include "host/error.h"

namespace llm {

// out (OC) = W (OC,C) · x (C) + b: one output row per iteration, threads split the rows.
static void gemv(float* out, const float* x, const float* w, const float* b, int C, int OC) {
#pragma omp parallel for schedule(static)
  for (int o = 0; o < OC; o++) {
    const float* row = w + (size_t)o * C;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < C; c++) s += row[c] * x[c];
    out[o] = s + (b ? b[o] : 0.0f);
  }
}

// out (n,OC) = inp (n,C) · W (OC,C)ᵀ + b: matrix-vector for a decode step, the reference GEMM for a prefill.
static void linear(float* out, const float* inp, const float* w, const float* b, int n, int C, int OC) {
  if (n == 1) gemv(out, inp, w, b, C, OC);
  else ref::matmul_forward(out, inp, w, b, n, C, OC);
}

KVCacheGPT2::KVCacheGPT2(const GPT2Config& config, std::vector<float>&& params)
    : c_(config), params_(std::move(params)), off_(param_offsets(config)) {
  if (params_.size() != num_parameters(c_))
    fail("KVCacheGPT2: got ", params_.size(), " parameters, the config needs ", num_parameters(c_));
  if (c_.channels % c_.num_heads != 0) fail("KVCacheGPT2: channels not divisible by num_heads");
  const size_t cache = (size_t)c_.num_layers * c_.max_seq_len * c_.channels;
  kcache_.assign(cache, 0.0f);
  vcache_.assign(cache, 0.0f);
  scores_.assign((size_t)omp_get_max_threads() * c_.max_seq_len, 0.0f);
  logits_.assign(c_.padded_vocab_size, 0.0f);
}

const float* KVCacheGPT2::prefill(const int* tokens, int n) {
  if (n < 1 || n > c_.max_seq_len) fail("prefill: ", n, " tokens, expected 1..", c_.max_seq_len);
  pos_ = 0;  // older cache rows are simply overwritten
  return forward_rows(tokens, n);
}

const float* KVCacheGPT2::step(int token) {
  if (pos_ >= c_.max_seq_len) fail("step: the KV cache is full (", c_.max_seq_len, " positions); re-prefill a cropped context");
  return forward_rows(&token, 1);
}

const float* KVCacheGPT2::forward_rows(const int* tokens, int n) {
  const int C = c_.channels, NH = c_.num_heads, hs = C / NH, T = c_.max_seq_len, V = c_.vocab_size;
  const size_t nC = (size_t)n * C;
  x_.resize(nC); ln_.resize(nC); atty_.resize(nC); tmp_.resize(nC);
  qkv_.resize(3 * nC); fch_.resize(4 * nC); mean_.resize(n); rstd_.resize(n);
  // x[i] = wte[token_i] + wpe[pos + i]
  for (int i = 0; i < n; i++) {
    if (tokens[i] < 0 || tokens[i] >= V) fail("token id ", tokens[i], " outside the vocabulary [0, ", V, ")");
    const float* te = p(kWte) + (size_t)tokens[i] * C;
    const float* pe = p(kWpe) + (size_t)(pos_ + i) * C;
    for (int c = 0; c < C; c++) x_[(size_t)i * C + c] = te[c] + pe[c];
  }
  const float scale = 1.0f / std::sqrt((float)hs);
  for (int l = 0; l < c_.num_layers; l++) {
    // attention block: x += proj(attn(ln1(x)))
    ref::layernorm_forward(ln_.data(), mean_.data(), rstd_.data(), x_.data(), p(kLn1w) + (size_t)l * C,
                           p(kLn1b) + (size_t)l * C, n, C);
    linear(qkv_.data(), ln_.data(), p(kQkvw) + (size_t)l * 3 * C * C,
           c_.qkv_bias ? p(kQkvb) + (size_t)l * 3 * C : nullptr, n, C, 3 * C);
    float* kc = kcache_.data() + (size_t)l * T * C;  // (maxT, C) of this layer
    float* vc = vcache_.data() + (size_t)l * T * C;
    for (int i = 0; i < n; i++) {  // append this chunk's keys and values
      std::memcpy(kc + (size_t)(pos_ + i) * C, qkv_.data() + (size_t)i * 3 * C + C, C * sizeof(float));
      std::memcpy(vc + (size_t)(pos_ + i) * C, qkv_.data() + (size_t)i * 3 * C + 2 * C, C * sizeof(float));
    }
#pragma omp parallel for schedule(static)
    for (int ih = 0; ih < n * NH; ih++) {
      const int i = ih / NH, h = ih % NH, len = pos_ + i + 1;  // causal: row i sees positions 0..pos+i
      const float* q = qkv_.data() + (size_t)i * 3 * C + h * hs;
      float* s = scores_.data() + (size_t)omp_get_thread_num() * T;
      float mx = -INFINITY;
      for (int t = 0; t < len; t++) {
        const float* k = kc + (size_t)t * C + h * hs;
        float d = 0.0f;
        for (int e = 0; e < hs; e++) d += q[e] * k[e];
        s[t] = d * scale;
        mx = std::max(mx, s[t]);
      }
      float sum = 0.0f;
      for (int t = 0; t < len; t++) { s[t] = std::exp(s[t] - mx); sum += s[t]; }
      const float inv = 1.0f / sum;
      float* o = atty_.data() + (size_t)i * C + h * hs;
      for (int e = 0; e < hs; e++) o[e] = 0.0f;
      for (int t = 0; t < len; t++) {
        const float* v = vc + (size_t)t * C + h * hs;
        const float a = s[t] * inv;
        for (int e = 0; e < hs; e++) o[e] += a * v[e];
      }
    }
    linear(tmp_.data(), atty_.data(), p(kAttprojw) + (size_t)l * C * C, p(kAttprojb) + (size_t)l * C, n, C, C);
    for (size_t j = 0; j < nC; j++) x_[j] += tmp_[j];
    // MLP block: x += fcproj(gelu(fc(ln2(x))))
    ref::layernorm_forward(ln_.data(), mean_.data(), rstd_.data(), x_.data(), p(kLn2w) + (size_t)l * C,
                           p(kLn2b) + (size_t)l * C, n, C);
    linear(fch_.data(), ln_.data(), p(kFcw) + (size_t)l * 4 * C * C, p(kFcb) + (size_t)l * 4 * C, n, C, 4 * C);
    ref::gelu_forward(fch_.data(), fch_.data(), 4 * nC);
    linear(tmp_.data(), fch_.data(), p(kFcprojw) + (size_t)l * C * 4 * C, p(kFcprojb) + (size_t)l * C, n, 4 * C, C);
    for (size_t j = 0; j < nC; j++) x_[j] += tmp_[j];
  }
  pos_ += n;
  // Only the last row's logits are needed: lnf, then the head over the V real rows (padding stays 0).
  const float* last = x_.data() + (size_t)(n - 1) * C;
  ref::layernorm_forward(ln_.data(), mean_.data(), rstd_.data(), last, p(kLnfw), p(kLnfb), 1, C);
  gemv(logits_.data(), ln_.data(), c_.tied_head ? p(kWte) : p(kLmHead), nullptr, C, V);
  return logits_.data();
}

// ---- uncached ----

UncachedGPT2::UncachedGPT2(const GPT2Config& config, const std::vector<float>& params) : model_(config) {
  if (params.size() != model_.num_params())
    fail("UncachedGPT2: got ", params.size(), " parameters, the config needs ", model_.num_params());
  std::memcpy(model_.params(), params.data(), params.size() * sizeof(float));
}

const float* UncachedGPT2::run() {
  const int T = (int)ctx_.size();
  model_.forward(ctx_.data(), nullptr, 1, T);
  return model_.logits() + (size_t)(T - 1) * model_.config().padded_vocab_size;
}

const float* UncachedGPT2::prefill(const int* tokens, int n) {
  if (n < 1 || n > model_.config().max_seq_len) fail("prefill: ", n, " tokens, expected 1..", model_.config().max_seq_len);
  ctx_.assign(tokens, tokens + n);
  return run();
}

const float* UncachedGPT2::step(int token) {
  if ((int)ctx_.size() >= model_.config().max_seq_len) fail("step: context is full; re-prefill a cropped context");
  ctx_.push_back(token);
  return run();
}

std::unique_ptr<LogitsModel> make_cpu_logits_model(const GPT2Config& config, std::vector<float>&& params, bool kv_cache) {
  if (kv_cache) return std::make_unique<KVCacheGPT2>(config, std::move(params));
  return std::make_unique<UncachedGPT2>(config, params);
}

}  // namespace llm
