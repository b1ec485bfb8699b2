// fuzz_safetensors.cpp — libFuzzer target for the safetensors parser and the HF GPT-2 mapping.
//
// Input: byte 0 selects the config (even: inferred from the tensors like a bare model.safetensors; odd: a fixed
// tiny config as if config.json were given), the rest is the file. Every outcome must be either success or
// llm::Error — any crash, sanitizer report, leak or other exception is a finding.
// Build/run (clang): see cmake/weights.cmake; seeds in fuzz/corpus_safetensors (scripts/gen_hf_fixtures.py --fuzz-seeds).
#include <cstdint>
#include <cstdio>
#include <vector>

#include "host/error.h"
#include "host/hf_gpt2.h"
#include "host/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool fixed = data[0] & 1;
  try {
    llm::SafetensorsReader st(llm::memory_source("fuzz.safetensors", data + 1, size - 1));
    llm::GPT2Config cfg;  // tiny: V=8 (Vp 128), C=4, NH=2, L=1, maxT=4
    cfg.vocab_size = 8;
    cfg.padded_vocab_size = 128;
    cfg.channels = 4;
    cfg.num_heads = 2;
    cfg.num_layers = 1;
    cfg.max_seq_len = 4;
    llm::GPT2Config got;
    std::vector<float> params;
    llm::load_hf_gpt2(st, fixed ? &cfg : nullptr, &got, &params);
    if (params.size() != llm::num_parameters(got)) __builtin_trap();
    // Touch every tensor through the fp32 reader too (F16/BF16/other dtypes).
    for (const llm::StTensor& t : st.header().tensors) {
      if (t.numel > (1u << 20)) continue;
      std::vector<float> buf(t.numel);
      try {
        st.read_f32(t, buf.data());
      } catch (const llm::Error&) {
      }
    }
  } catch (const llm::Error&) {
  }
  return 0;
}
