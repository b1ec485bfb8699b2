#include "cpu/gpt2_infer.h"

#include <omp.h>


#include <cmath>
#include <cstring>

#include "cpu/ops.h"
#include "host/error.h"

namespace llm {

namespace {

constexpr size_t kParallelAttention = 64 * 768;  // rows × positions × channels below which attention is serial

// o (hs) = Σ_t softmax_t(scale · q·k_t) v_t over the len cached rows k_t = k + t·ld, v_t = v + t·ld; s: (len) scratch.
// HS = the head size as a constant (GPT-2: 64), so q·k is an unrolled vector sum and o stays in registers over t
// (with a runtime size o was loaded and stored back for every t); HS = 0: any hs.
constexpr int kAttendAhead = 6;  // rows

template <int HS>
void attend_head(float* o, const float* q, const float* k, const float* v, size_t ld, int len, float scale, float* s,
                 int hs_rt = HS) {
  const int hs = HS > 0 ? HS : hs_rt;
  float mx = -INFINITY;
  for (int t = 0; t < len; t++) {
    const float* kt = k + (size_t)t * ld;
    // a few rows ahead (the cache rows of one head are contiguous; this runs ahead of the hardware prefetcher,
    // which stops at each 4 KB page)
    for (int e = 0; e < hs; e += 16) __builtin_prefetch(kt + kAttendAhead * ld + e);
    float d = 0.0f;
#pragma omp simd reduction(+ : d)  // a vector sum (its order differs from a serial loop; the same in every mode)
    for (int e = 0; e < hs; e++) d += q[e] * kt[e];
    s[t] = d * scale;
    mx = std::max(mx, s[t]);
  }
  float sum = 0.0f;
  for (int t = 0; t < len; t++) { s[t] = std::exp(s[t] - mx); sum += s[t]; }
  const float inv = 1.0f / sum;
  float acc[HS > 0 ? HS : 1];
  float* a = HS > 0 ? acc : o;  // accumulate in registers when the size is known
  for (int e = 0; e < hs; e++) a[e] = 0.0f;
  for (int t = 0; t < len; t++) {
    const float* vt = v + (size_t)t * ld;
    for (int e = 0; e < hs; e += 16) __builtin_prefetch(vt + kAttendAhead * ld + e);
    const float w = s[t] * inv;
#pragma omp simd
    for (int e = 0; e < hs; e++) a[e] += w * vt[e];
  }
  if (HS > 0) std::memcpy(o, a, hs * sizeof(float));
}

}  // namespace

KVCacheGPT2::KVCacheGPT2(const GPT2Config& config, std::vector<float>&& params, WeightFormat format, bool use_cache)
    : c_(config), params_(std::move(params)), use_cache_(use_cache), off_(param_offsets(config)) {
  if (params_.size() != num_parameters(c_))
    fail("KVCacheGPT2: got ", params_.size(), " parameters, the config needs ", num_parameters(c_));
  if (c_.channels % c_.num_heads != 0) fail("KVCacheGPT2: channels not divisible by num_heads");
  const int C = c_.channels, L = c_.num_layers, T = c_.max_seq_len;
  const size_t c = C;
  qkv_w_.resize(L);
  attproj_w_.resize(L);
  fc_w_.resize(L);
  fcproj_w_.resize(L);
  for (int l = 0; l < L; l++) {
    qkv_w_[l].set(p(kQkvw) + l * 3 * c * c, 3 * C, C, format);
    attproj_w_[l].set(p(kAttprojw) + l * c * c, C, C, format);
    fc_w_[l].set(p(kFcw) + l * 4 * c * c, 4 * C, C, format);
    fcproj_w_[l].set(p(kFcprojw) + l * 4 * c * c, C, 4 * C, format);
  }
  head_w_.set(c_.tied_head ? p(kWte) : p(kLmHead), c_.vocab_size, C, format);  // the V real rows only
  const size_t cache = (size_t)L * T * c;
  kcache_.assign(cache, 0.0f);
  vcache_.assign(cache, 0.0f);
  scores_.assign((size_t)omp_get_max_threads() * T, 0.0f);
  xt_.assign((size_t)omp_get_max_threads() * c, 0.0f);
  lnt_.assign((size_t)omp_get_max_threads() * c, 0.0f);
  logits_.assign(c_.padded_vocab_size, 0.0f);
  // activations for up to maxT rows, allocated once (a decode step allocates nothing)
  for (auto* v : {&x_, &ln_, &atty_, &tmp_}) v->reserve((size_t)T * c);
  qkv_.reserve((size_t)T * 3 * c);
  fch_.reserve((size_t)T * 4 * c);
  mean_.reserve(T);
  rstd_.reserve(T);
  ctx_.reserve(T);
}

size_t KVCacheGPT2::weight_bytes_per_token() const {
  size_t b = head_w_.bytes();
  for (int l = 0; l < c_.num_layers; l++)
    b += qkv_w_[l].bytes() + attproj_w_[l].bytes() + fc_w_[l].bytes() + fcproj_w_[l].bytes();
  return b;
}

const float* KVCacheGPT2::prefill(const int* tokens, int n) {
  if (n < 1 || n > c_.max_seq_len) fail("prefill: ", n, " tokens, expected 1..", c_.max_seq_len);
  pos_ = 0;  // older cache rows are simply overwritten
  ctx_.assign(tokens, tokens + n);
  return forward_rows(tokens, n);
}

const float* KVCacheGPT2::step(int token) {
  if (pos_ >= c_.max_seq_len) fail("step: the KV cache is full (", c_.max_seq_len, " positions); re-prefill a cropped context");
  ctx_.push_back(token);
  if (!use_cache_) {  // no cache: the whole context again from position 0
    pos_ = 0;
    return forward_rows(ctx_.data(), (int)ctx_.size());
  }
  return forward_one(token);
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
    qkv_w_[l].forward(qkv_.data(), ln_.data(), c_.qkv_bias ? p(kQkvb) + (size_t)l * 3 * C : nullptr, n);
    for (int i = 0; i < n; i++)  // append this chunk's keys and values
      for (int h = 0; h < NH; h++) {
        std::memcpy(kv_row(kcache_, l, h, pos_ + i), qkv_.data() + (size_t)i * 3 * C + C + h * hs, hs * sizeof(float));
        std::memcpy(kv_row(vcache_, l, h, pos_ + i), qkv_.data() + (size_t)i * 3 * C + 2 * C + h * hs, hs * sizeof(float));
      }
    // One decode row over a short cache is a few µs of work: less than waking the second thread (the fork/join
    // of a passive OpenMP team costs tens of µs on a shared machine), so it runs on the calling thread.
    const bool par = (size_t)n * (pos_ + n) * C >= kParallelAttention;
#pragma omp parallel for schedule(static) if (par)
    for (int ih = 0; ih < n * NH; ih++) {
      const int i = ih / NH, h = ih % NH, len = pos_ + i + 1;  // causal: row i sees positions 0..pos+i
      const float* q = qkv_.data() + (size_t)i * 3 * C + h * hs;
      float* s = scores_.data() + (size_t)omp_get_thread_num() * T;
      float* o = atty_.data() + (size_t)i * C + h * hs;
      const float *kc = kv_row(kcache_, l, h, 0), *vc = kv_row(vcache_, l, h, 0);
      if (hs == 64) attend_head<64>(o, q, kc, vc, hs, len, scale, s);
      else attend_head<0>(o, q, kc, vc, hs, len, scale, s, hs);
    }
    attproj_w_[l].forward(tmp_.data(), atty_.data(), p(kAttprojb) + (size_t)l * C, n);
    for (size_t j = 0; j < nC; j++) x_[j] += tmp_[j];
    // MLP block: x += fcproj(gelu(fc(ln2(x))))
    ref::layernorm_forward(ln_.data(), mean_.data(), rstd_.data(), x_.data(), p(kLn2w) + (size_t)l * C,
                           p(kLn2b) + (size_t)l * C, n, C);
    fc_w_[l].forward(fch_.data(), ln_.data(), p(kFcb) + (size_t)l * 4 * C, n);
    ref::gelu_forward(fch_.data(), fch_.data(), 4 * nC);
    fcproj_w_[l].forward(tmp_.data(), fch_.data(), p(kFcprojb) + (size_t)l * C, n);
    for (size_t j = 0; j < nC; j++) x_[j] += tmp_[j];
  }
  pos_ += n;
  // Only the last row's logits are needed: lnf, then the head over the V real rows (padding stays 0).
  const float* last = x_.data() + (size_t)(n - 1) * C;
  ref::layernorm_forward(ln_.data(), mean_.data(), rstd_.data(), last, p(kLnfw), p(kLnfb), 1, C);
  head_w_.forward(logits_.data(), ln_.data(), nullptr, 1);
  return logits_.data();
}

const float* KVCacheGPT2::forward_one(int token) {
  const int C = c_.channels, NH = c_.num_heads, hs = C / NH, T = c_.max_seq_len, V = c_.vocab_size, pos = pos_;
  if (token < 0 || token >= V) fail("token id ", token, " outside the vocabulary [0, ", V, ")");
  const float scale = 1.0f / std::sqrt((float)hs);
  const int threads = std::min(omp_get_max_threads(), (int)(xt_.size() / C));
  qkv_.resize(3 * (size_t)C); atty_.resize(C); tmp_.resize(C); fch_.resize(4 * (size_t)C);
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    const Part part{tid, nth};
    float* x = xt_.data() + (size_t)tid * C;   // this thread's copy of the residual row (all copies equal)
    float* ln = lnt_.data() + (size_t)tid * C;
    float mean, rstd;
    const float* te = p(kWte) + (size_t)token * C;
    const float* pe = p(kWpe) + (size_t)pos * C;
    for (int c = 0; c < C; c++) x[c] = te[c] + pe[c];
    for (int l = 0; l < c_.num_layers; l++) {
      // attention block: x += proj(attn(ln1(x)))
      ref::layernorm_forward(ln, &mean, &rstd, x, p(kLn1w) + (size_t)l * C, p(kLn1b) + (size_t)l * C, 1, C);
      qkv_w_[l].forward_part(qkv_.data(), ln, c_.qkv_bias ? p(kQkvb) + (size_t)l * 3 * C : nullptr, part);
      barrier_.wait(nth);
      for (int h = part.first(NH); h < part.end(NH); h++) {  // this thread's heads: append k, v, then attend
        float *kc = kv_row(kcache_, l, h, 0), *vc = kv_row(vcache_, l, h, 0);
        std::memcpy(kc + (size_t)pos * hs, qkv_.data() + C + h * hs, hs * sizeof(float));
        std::memcpy(vc + (size_t)pos * hs, qkv_.data() + 2 * C + h * hs, hs * sizeof(float));
        float* s = scores_.data() + (size_t)tid * T;
        if (hs == 64) attend_head<64>(atty_.data() + h * hs, qkv_.data() + h * hs, kc, vc, hs, pos + 1, scale, s);
        else attend_head<0>(atty_.data() + h * hs, qkv_.data() + h * hs, kc, vc, hs, pos + 1, scale, s, hs);
      }
      barrier_.wait(nth);
      attproj_w_[l].forward_part(tmp_.data(), atty_.data(), p(kAttprojb) + (size_t)l * C, part);
      barrier_.wait(nth);
      for (int c = 0; c < C; c++) x[c] += tmp_[c];
      // MLP block: x += fcproj(gelu(fc(ln2(x)))); each thread applies GELU to the fc rows it wrote
      ref::layernorm_forward(ln, &mean, &rstd, x, p(kLn2w) + (size_t)l * C, p(kLn2b) + (size_t)l * C, 1, C);
      const auto [r0, r1] = fc_w_[l].forward_part(fch_.data(), ln, p(kFcb) + (size_t)l * 4 * C, part);
      ref::gelu_forward(fch_.data() + r0, fch_.data() + r0, r1 - r0);
      barrier_.wait(nth);
      fcproj_w_[l].forward_part(tmp_.data(), fch_.data(), p(kFcprojb) + (size_t)l * C, part);
      barrier_.wait(nth);  // (tmp_ is next written by the attention projection, three barriers on)
      for (int c = 0; c < C; c++) x[c] += tmp_[c];
    }
    // lnf, then the head over the V real rows (padding stays 0)
    ref::layernorm_forward(ln, &mean, &rstd, x, p(kLnfw), p(kLnfb), 1, C);
    head_w_.forward_part(logits_.data(), ln, nullptr, part);
  }  // the team's join: logits_ complete
  pos_ += 1;
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

std::unique_ptr<LogitsModel> make_cpu_logits_model(const GPT2Config& config, std::vector<float>&& params, bool kv_cache,
                                                   WeightFormat format) {
  if (!kv_cache && format == WeightFormat::kFp32) return std::make_unique<UncachedGPT2>(config, params);
  return std::make_unique<KVCacheGPT2>(config, std::move(params), format, kv_cache);
}

std::unique_ptr<LogitsModel> make_cpu_logits_model(const GPT2Config& config, std::vector<float>&& params, bool kv_cache) {
  return make_cpu_logits_model(config, std::move(params), kv_cache, WeightFormat::kFp32);
}

}  // namespace llm
