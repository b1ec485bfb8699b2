// bench_decode.cpp — CPU decode speed of GPT-2 124M (random init), with and without the KV cache.
//
//   OMP_NUM_THREADS=2 ./build/bench_decode [new_tokens=64] [prompt_tokens=4] [preset=gpt2]
// Greedy, batch 1: prefill the prompt, then time new_tokens decode steps. Prints tokens/s for each path and
// checks both produced the same tokens. Decoding is memory-bound: every step reads all weights once
// (~500 MB in fp32 for 124M), so tokens/s is roughly memory bandwidth / 500 MB.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cpu/gpt2_infer.h"
#include "cpu/gpt2_model.h"

int main(int argc, char** argv) {
  const int new_tokens = argc > 1 ? std::atoi(argv[1]) : 64;
  const int prompt_len = argc > 2 ? std::atoi(argv[2]) : 4;
  const std::string preset = argc > 3 ? argv[3] : "gpt2";
  llm::GPT2Config c = llm::preset_config(preset);
  llm::GPT2Model init(c);
  init.init_gpt2(1337);
  std::vector<float> params(init.params(), init.params() + init.num_params());
  std::vector<int> prompt;
  for (int i = 0; i < prompt_len; i++) prompt.push_back((i * 7919 + 13) % c.vocab_size);
  std::printf("bench_decode: %s (%zu params), %d threads, prompt %d, %d new tokens, greedy\n", preset.c_str(),
              params.size(), omp_get_max_threads(), prompt_len, new_tokens);
  std::vector<int> out[2];
  for (int kv = 1; kv >= 0; kv--) {
    auto model = llm::make_cpu_logits_model(c, std::vector<float>(params), kv);
    llm::GenerateOptions opt;
    opt.max_new_tokens = new_tokens;
    opt.sampling.temperature = 0.0f;
    llm::GenerateStats st;
    out[kv] = llm::generate_tokens(*model, prompt, opt, nullptr, &st);
    // decode_seconds covers new_tokens - 1 forward steps (the first token comes from the prefill)
    std::printf("  %-12s prefill %.1f ms, decode %.2f tok/s (%d steps in %.3f s)\n", kv ? "kv cache" : "no cache",
                1e3 * st.prefill_seconds, (st.new_tokens - 1) / st.decode_seconds, st.new_tokens - 1, st.decode_seconds);
  }
  std::printf("  tokens identical: %s\n", out[0] == out[1] ? "yes" : "NO");
  return out[0] == out[1] ? 0 : 1;
}
