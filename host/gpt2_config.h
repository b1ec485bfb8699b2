// gpt2_config.h — the GPT-2 hyperparameters and the parameter-buffer layout shared by every program.
//
// Parameters live in ONE contiguous buffer in llm.c's order, so llm.c checkpoints load directly:
//   wte (Vp,C) wpe (maxT,C) ln1w (L,C) ln1b (L,C) qkvw (L,3C,C) qkvb (L,3C) attprojw (L,C,C) attprojb (L,C)
//   ln2w (L,C) ln2b (L,C) fcw (L,4C,C) fcb (L,4C) fcprojw (L,C,4C) fcprojb (L,C) lnfw (C) lnfb (C) [lm_head (Vp,C)]
// Linear weights are (out_features, in_features) row-major, like nn.Linear.
// Two extensions beyond llm.c, both off in llm.c files (their header slots are zero there):
//   qkv_bias == false  -> qkvb has size 0 (the book's GPT-2 layout)
//   tied_head == false -> a 17th tensor lm_head (Vp,C) follows lnfb
#pragma once
#include <array>
#include <cstddef>
#include <string>

namespace llm {

struct GPT2Config {
  int max_seq_len = 1024;          // maxT: rows of wpe
  int vocab_size = 50257;          // V: real vocabulary (loops over logits run to V)
  int padded_vocab_size = 50304;   // Vp: V rounded up to a multiple of 128 (rows of wte)
  int num_layers = 12;             // L
  int num_heads = 12;              // NH
  int channels = 768;              // C
  bool qkv_bias = true;            // HF/OpenAI GPT-2: true; the book's GPTModel: false
  bool tied_head = true;           // logits = lnf · wteᵀ when true, lnf · lm_headᵀ when false
  float dropout = 0.0f;            // p for embedding, attention weights and residual branches (training only)
};

enum ParamTensor : int {
  kWte, kWpe, kLn1w, kLn1b, kQkvw, kQkvb, kAttprojw, kAttprojb, kLn2w, kLn2b,
  kFcw, kFcb, kFcprojw, kFcprojb, kLnfw, kLnfb, kLmHead, kNumParamTensors
};

// Element counts of the 17 tensors (kLmHead is 0 when tied, kQkvb is 0 without qkv bias).
inline std::array<size_t, kNumParamTensors> param_sizes(const GPT2Config& c) {
  const size_t Vp = c.padded_vocab_size, C = c.channels, L = c.num_layers, T = c.max_seq_len;
  return {Vp * C, T * C, L * C, L * C, L * 3 * C * C, c.qkv_bias ? L * 3 * C : 0, L * C * C, L * C,
          L * C, L * C, L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C, c.tied_head ? 0 : Vp * C};
}

inline size_t num_parameters(const GPT2Config& c) {
  size_t n = 0;
  for (size_t s : param_sizes(c)) n += s;
  return n;
}

// Offsets of each tensor in the contiguous buffer (element units).
inline std::array<size_t, kNumParamTensors> param_offsets(const GPT2Config& c) {
  std::array<size_t, kNumParamTensors> off{};
  auto sizes = param_sizes(c);
  size_t o = 0;
  for (int i = 0; i < kNumParamTensors; i++) { off[i] = o; o += sizes[i]; }
  return off;
}

inline int round_up(int x, int multiple) { return (x + multiple - 1) / multiple * multiple; }

// Named presets: "gpt2" (124M), "gpt2-medium" (355M), "gpt2-large" (774M), "gpt2-xl" (1558M),
// "book-124m" (ctx 256, no qkv bias, untied head, dropout 0.1), llm.c-style "d12"/"d24"/"d36"/"d48",
// and tiny test configs "tiny" (V=256, C=32, L=2, NH=4, maxT=64) / "tiny-book".
// Throws llm::Error for an unknown name. (Implemented in host/gpt2_config.cpp.)
GPT2Config preset_config(const std::string& name);

}  // namespace llm
