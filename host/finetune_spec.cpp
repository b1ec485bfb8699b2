// finetune_spec.cpp — see finetune_spec.h.
#include "host/finetune_spec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "host/binary_io.h"
#include "host/error.h"
#include "host/memory.h"
#include "host/weights_check.h"

namespace llm {

namespace {

// U(-bound, bound) from mt19937_64 (top 24 bits of a draw, like GPT2Model::init_book).
void fill_uniform(float* p, size_t n, double bound, std::mt19937_64& rng) {
  for (size_t i = 0; i < n; i++) p[i] = (float)((2.0 * ((double)(rng() >> 40) * 0x1.0p-24) - 1.0) * bound);
}

// The LoRA slot layout of a spec with rank r > 0 into f's lora_off/lora_in/lora_out: slot s = layer·
// kNumBlockLinears + kind, the head last, each A (r,in) then B (out,r). Returns the total number of floats.
size_t lora_slots(const GPT2Config& c, const FinetuneSpec& spec, FinetuneInit* f) {
  const int L = c.num_layers, C = c.channels, r = spec.lora_rank;
  const int head_out = spec.num_classes > 0 ? spec.num_classes : c.padded_vocab_size;
  size_t o = 0;
  auto add = [&](int in, int out) {
    f->lora_off.push_back(o);
    f->lora_in.push_back(in);
    f->lora_out.push_back(out);
    o += (size_t)r * in + (size_t)out * r;
  };
  for (int l = 0; l < L; l++) {
    add(C, 3 * C);      // qkv
    add(C, C);          // attn proj
    add(C, 4 * C);      // fc
    add(4 * C, C);      // fc proj
  }
  add(C, head_out);     // head
  return o;
}

}  // namespace

FinetuneSpec finetune_check_spec(const GPT2Config& c, FinetuneSpec spec) {
  const int L = c.num_layers;
  if (spec.lora_rank < 0) fail("LoRA rank ", spec.lora_rank, " must be positive (or 0 for no LoRA)");
  if (spec.lora_rank > 0 && !(spec.lora_alpha > 0)) fail("LoRA alpha ", spec.lora_alpha, " must be positive");
  if (spec.num_classes < 0 || spec.num_classes == 1)
    fail("fine-tune: number of classes ", spec.num_classes, " must be >= 2 (or 0 for the LM head)");
  if (spec.train_from_layer == -1) spec.train_from_layer = L - 1;
  if (spec.train_from_layer < 0 || spec.train_from_layer > L)
    fail("fine-tune: first trainable block ", spec.train_from_layer, " not in [0, ", L, "]");
  return spec;
}

FinetuneInit finetune_init(const GPT2Config& c, const FinetuneSpec& spec) {
  const int C = c.channels, r = spec.lora_rank;
  FinetuneInit f;
  std::mt19937_64 rng(spec.seed);
  if (spec.num_classes > 0) {  // new head, nn.Linear default init: U(±1/sqrt(C)) for weight and bias
    f.head_w.resize((size_t)spec.num_classes * C);
    f.head_b.resize(spec.num_classes);
    fill_uniform(f.head_w.data(), f.head_w.size(), 1.0 / std::sqrt((double)C), rng);
    fill_uniform(f.head_b.data(), f.head_b.size(), 1.0 / std::sqrt((double)C), rng);
  }
  if (r == 0) return f;
  f.lora.assign(lora_slots(c, spec, &f), 0.0f);
  // A from the same stream (after the head), B = 0
  for (size_t s = 0; s < f.lora_off.size(); s++)
    fill_uniform(f.lora.data() + f.lora_off[s], (size_t)r * f.lora_in[s], 1.0 / std::sqrt((double)r), rng);
  return f;
}

GPT2Config finetune_merge_lora(const GPT2Config& c, const FinetuneSpec& spec, const float* lora,
                               std::vector<float>* params, std::vector<float>* head_w) {
  if (spec.lora_rank <= 0) return c;
  GPT2Config merged = c;
  if (spec.num_classes == 0 && c.tied_head) {  // untie: lm_head (the last tensor) starts as a copy of wte
    merged.tied_head = false;
    const size_t wte = param_sizes(c)[kWte];  // wte is the first tensor
    params->resize(num_parameters(c) + wte);
    std::copy_n(params->begin(), wte, params->begin() + num_parameters(c));
  }
  FinetuneInit layout;
  lora_slots(c, spec, &layout);
  static constexpr ParamTensor kW[kNumBlockLinears] = {kQkvw, kAttprojw, kFcw, kFcprojw};
  const auto offsets = param_offsets(merged);
  const int L = c.num_layers, r = spec.lora_rank;
  const float scale = spec.lora_alpha / spec.lora_rank;
  std::vector<float> sb;
  for (size_t s = 0; s < layout.lora_off.size(); s++) {  // slot s: the block linears in kind order, then the head
    const int in = layout.lora_in[s], out = layout.lora_out[s], l = (int)s / kNumBlockLinears;
    float* W = (int)s == L * kNumBlockLinears
                   ? (spec.num_classes > 0 ? head_w->data() : params->data() + offsets[kLmHead])
                   : params->data() + offsets[kW[s % kNumBlockLinears]] + (size_t)l * in * out;
    const float* A = lora + layout.lora_off[s];  // (r,in), then B (out,r)
    sb.assign(A + (size_t)r * in, A + (size_t)r * in + (size_t)out * r);
    for (float& x : sb) x *= scale;
    // W (out,in) += (scale·B) (out,r) · A (r,in), summed over k in order onto W
    for (int o = 0; o < out; o++)
      for (int k = 0; k < r; k++) {
        const float b = sb[(size_t)o * r + k];
        const float* a = A + (size_t)k * in;
        float* w = W + (size_t)o * in;
        for (int i = 0; i < in; i++) w[i] += b * a[i];
      }
  }
  return merged;
}

void finetune_check_batch(const GPT2Config& c, const FinetuneSpec& spec, const int* inputs,
                          const int* labels_or_targets, int B, int T) {
  const int N = spec.num_classes, V = c.vocab_size;
  const int* y = labels_or_targets;
  if (y && N > 0)
    for (int b = 0; b < B; b++)
      if (y[b] < 0 || y[b] >= N) fail("fine-tune: label ", y[b], " of row ", b, " not in [0,", N, ")");
  if (y && N == 0 && B > 0 && T > 0)
    for (size_t i = 0; i < (size_t)B * T; i++)
      if (y[i] != -100 && (y[i] < 0 || y[i] >= V))
        fail("fine-tune: target ", y[i], " at position ", i, " not in [0,", V, ") or -100");
  if (B <= 0 || T <= 0) fail("fine-tune forward: batch ", B, " and length ", T, " must be positive");
  if (T > c.max_seq_len) fail("fine-tune forward: sequence length ", T, " exceeds the context ", c.max_seq_len);
  for (size_t i = 0; i < (size_t)B * T; i++)
    if (inputs[i] < 0 || inputs[i] >= V)
      fail("fine-tune forward: token ", inputs[i], " at position ", i, " not in [0,", V, ")");
}

bool finetune_tensor_trainable(const GPT2Config& c, const FinetuneSpec& spec, ParamTensor k, int layer) {
  if (spec.lora_rank > 0) return false;
  const bool lm = spec.num_classes == 0;
  switch (k) {
    case kWte: return spec.train_embeddings || (lm && c.tied_head && spec.train_head);
    case kWpe: return spec.train_embeddings;
    case kLnfw: case kLnfb: return spec.train_final_ln;
    case kLmHead: return lm && !c.tied_head && spec.train_head;
    case kQkvb: if (!c.qkv_bias) return false; [[fallthrough]];
    default: return layer >= spec.train_from_layer;
  }
}

// ---- classifier checkpoint ------------------------------------------------------------------------------------

namespace {
constexpr char kClsMagic[8] = {'L', 'L', 'M', 'C', 'L', 'S', 'F', '1'};
constexpr int32_t kClsVersion = 1;
}  // namespace

void save_classifier(const std::string& path, const ClassifierFile& f) {
  const GPT2Config& c = f.config;
  const int32_t N = (int32_t)f.labels.size();
  if (f.params.size() != num_parameters(c) || f.head_w.size() != (size_t)N * c.channels || f.head_b.size() != (size_t)N)
    fail(path, ": inconsistent classifier tensors (internal error)");
  AtomicFile out(path);
  out.write(kClsMagic, 8);
  const int32_t hdr[11] = {kClsVersion, c.max_seq_len, c.vocab_size, c.padded_vocab_size, c.num_layers, c.num_heads,
                           c.channels, c.qkv_bias, c.tied_head, N, f.max_length};
  out.write(hdr, sizeof hdr);
  for (const auto& s : f.labels) {
    const int32_t len = (int32_t)s.size();
    out.write(&len, 4);
    out.write(s.data(), s.size());
  }
  out.write(f.params.data(), f.params.size() * 4);
  out.write(f.head_w.data(), f.head_w.size() * 4);
  out.write(f.head_b.data(), f.head_b.size() * 4);
  out.commit();
}

ClassifierFile load_classifier(const std::string& path) {
  InFile in(path);
  char magic[8];
  in.read(magic, 8, "magic");
  if (std::memcmp(magic, kClsMagic, 8) != 0) fail(path, ": not a classifier checkpoint (bad magic)");
  int32_t h[11];
  in.read(h, sizeof h, "header");
  if (h[0] != kClsVersion) fail(path, ": unsupported classifier version ", h[0], " (expected ", kClsVersion, ")");
  ClassifierFile f;
  GPT2Config& c = f.config;
  c.max_seq_len = h[1]; c.vocab_size = h[2]; c.padded_vocab_size = h[3]; c.num_layers = h[4]; c.num_heads = h[5];
  c.channels = h[6]; c.qkv_bias = h[7] != 0; c.tied_head = h[8] != 0;
  const int N = h[9];
  f.max_length = h[10];
  for (int i = 1; i <= 6; i++)
    if (h[i] <= 0 || h[i] > (1 << 24)) fail(path, ": header field ", i, " = ", h[i], " out of range");
  if (c.channels % c.num_heads != 0 || c.padded_vocab_size < c.vocab_size || (h[7] != 0 && h[7] != 1) ||
      (h[8] != 0 && h[8] != 1))
    fail(path, ": inconsistent model config in the header");
  if (N < 2 || N > 65536) fail(path, ": number of classes ", N, " out of range [2, 65536]");
  if (f.max_length < 0 || f.max_length > c.max_seq_len)
    fail(path, ": max length ", f.max_length, " outside [0, ", c.max_seq_len, "]");
  const uint64_t np = num_parameters(c);
  for (int i = 0; i < N; i++) {
    int32_t len;
    in.read(&len, 4, "label length");
    if (len < 0 || len > 4096) fail(path, ": label ", i, " length ", len, " out of range");
    std::string s(len, '\0');
    if (len) in.read(&s[0], len, "label");
    f.labels.push_back(s);
  }
  const uint64_t need = (np + (uint64_t)N * c.channels + N) * 4;
  // the remaining bytes must be exactly the tensors (checked before allocating)
  const uint64_t pos = 8 + sizeof h + [&] { uint64_t s = 0; for (auto& l : f.labels) s += 4 + l.size(); return s; }();
  if (in.size() != pos + need) fail(path, ": size ", in.size(), " bytes, expected ", pos + need);
  check_memory(path, need, "the classifier's parameters");
  f.params.resize(np);
  f.head_w.resize((size_t)N * c.channels);
  f.head_b.resize(N);
  in.read(f.params.data(), np * 4, "parameters");
  in.read(f.head_w.data(), f.head_w.size() * 4, "head weight");
  in.read(f.head_b.data(), f.head_b.size() * 4, "head bias");
  for (float x : f.head_w) if (!std::isfinite(x)) fail(path, ": non-finite head weight");
  check_finite_params(path, c, f.params.data());
  check_finite_array(path, "the head bias", f.head_b.data(), f.head_b.size());
  return f;
}

}  // namespace llm
