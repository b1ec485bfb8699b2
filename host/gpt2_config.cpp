#include "host/gpt2_config.h"

#include "host/error.h"

namespace llm {

static GPT2Config make(int maxT, int V, int L, int NH, int C, bool qkv_bias, bool tied, float dropout) {
  GPT2Config c;
  c.max_seq_len = maxT;
  c.vocab_size = V;
  c.padded_vocab_size = round_up(V, 128);
  c.num_layers = L;
  c.num_heads = NH;
  c.channels = C;
  c.qkv_bias = qkv_bias;
  c.tied_head = tied;
  c.dropout = dropout;
  return c;
}

GPT2Config preset_config(const std::string& name) {
  const int V = 50257;
  if (name == "gpt2" || name == "gpt2-124m" || name == "d12") return make(1024, V, 12, 12, 768, true, true, 0);
  if (name == "gpt2-medium" || name == "gpt2-355m" || name == "d24") return make(1024, V, 24, 16, 1024, true, true, 0);
  if (name == "gpt2-large" || name == "gpt2-774m" || name == "d36") return make(1024, V, 36, 20, 1280, true, true, 0);
  if (name == "gpt2-xl" || name == "gpt2-1558m" || name == "d48") return make(1024, V, 48, 25, 1600, true, true, 0);
  if (name == "book-124m") return make(256, V, 12, 12, 768, false, false, 0.1f);
  if (name == "d6") return make(1024, V, 6, 6, 384, true, true, 0);  // small llm.c-style model for quick runs
  if (name == "tiny") return make(64, 256, 2, 4, 32, true, true, 0);
  if (name == "tiny-book") return make(64, 256, 2, 4, 32, false, false, 0);
  fail("unknown model preset '", name,
       "' (known: gpt2, gpt2-medium, gpt2-large, gpt2-xl, book-124m, d6, d12, d24, d36, d48, tiny, tiny-book)");
}

}  // namespace llm
