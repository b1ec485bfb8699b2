// fuzz_hf_config — libFuzzer target for the Hugging Face config.json parser (parse_hf_config, host/hf_gpt2.*).
// Input: the config.json text. Every outcome must be success or llm::Error; an accepted config must be usable:
// positive sizes, channels divisible by heads, Vp >= V, and a parameter count that does not overflow.
// FUZZ_WRITE_SEEDS=<dir> writes valid configs (gpt2, gpt2-medium-like, tiny, untied) and exits.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "host/error.h"
#include "host/hf_gpt2.h"

static const char* kSeeds[] = {
    R"({"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
 "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
 "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
 "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": null, "vocab_size": 50257})",
    R"({"model_type": "gpt2", "n_embd": 4, "n_head": 2, "n_layer": 1, "n_positions": 4, "vocab_size": 5,
 "n_inner": null, "activation_function": "gelu_pytorch_tanh", "layer_norm_epsilon": 1e-5,
 "tie_word_embeddings": false, "scale_attn_by_inverse_layer_idx": false, "reorder_and_upcast_attn": false})",
    R"({"model_type": "gpt2", "n_embd": 1024, "n_head": 16, "n_layer": 24, "n_positions": 1024,
 "vocab_size": 50257, "n_inner": 4096, "tie_word_embeddings": true, "resid_pdrop": 0.0})",
};

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("FUZZ_WRITE_SEEDS")) {
    int k = 0;
    for (const char* s : kSeeds) std::ofstream(std::string(dir) + "/seed_" + std::to_string(k++)) << s;
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const llm::GPT2Config c = llm::parse_hf_config("config.json", text);
    if (c.vocab_size <= 0 || c.padded_vocab_size < c.vocab_size || c.channels <= 0 || c.num_heads <= 0 ||
        c.channels % c.num_heads != 0 || c.num_layers <= 0 || c.max_seq_len <= 0)
      __builtin_trap();
    if (c.dropout < 0.0f || !(c.dropout < 1.0f)) __builtin_trap();
    (void)llm::num_parameters(c);
  } catch (const llm::Error&) {
  }
  return 0;
}
