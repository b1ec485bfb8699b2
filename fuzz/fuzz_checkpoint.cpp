// fuzz_checkpoint — libFuzzer target for the model-file loaders: llm.c checkpoints (host/checkpoint.*: header
// checks, fp32/bf16 payload, CRC-32C, non-finite refusal) reached through load_model / read_model_config
// (host/hf_gpt2.*, which also dispatch non-llm.c files to the safetensors reader).
// Input: byte 0 is the mode, the rest is the file.
//   bit 0: recompute the CRC-32C (slot 11, when slot 10 = 1) after mutation, so the loader runs past the check
//   bit 1: load_model(path) instead of load_checkpoint(path)
// Every outcome must be success or llm::Error; an accepted model must have num_parameters(config) finite floats.
// FUZZ_WRITE_SEEDS=<dir> writes valid tiny models (fp32/bf16, tied/untied, with/without qkv bias) and exits.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "host/checkpoint.h"
#include "host/error.h"
#include "host/hf_gpt2.h"

static void write_seeds(const char* dir) {
  int k = 0;
  for (int dtype = 0; dtype < 2; dtype++)
    for (int variant = 0; variant < 3; variant++) {
      llm::GPT2Config c;  // tiny: maxT 4, V 5, Vp 8, L 1, NH 2, C 4
      c.max_seq_len = 4;
      c.vocab_size = 5;
      c.padded_vocab_size = 8;
      c.num_layers = 1;
      c.num_heads = 2;
      c.channels = 4;
      c.qkv_bias = variant != 1;
      c.tied_head = variant != 2;
      std::vector<float> p(llm::num_parameters(c));
      for (size_t i = 0; i < p.size(); i++) p[i] = 0.01f * static_cast<float>(static_cast<int>(i % 37) - 18);
      const std::string body = fuzz::written_bytes("model.bin", [&](const std::string& path) {
        llm::save_checkpoint(path, c, p.data(), dtype ? llm::CheckpointDtype::kBf16 : llm::CheckpointDtype::kFp32);
      });
      for (uint8_t mode = 0; mode < 4; mode++) fuzz::write_seed(dir, "seed_" + std::to_string(k++), mode, body);
    }
}

FUZZ_SEEDS_FROM_ENV(write_seeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::MemFile file;
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (mode & 1) fuzz::patch_crc(&body, 10, 11);
  file.set(body.data(), body.size());
  try {
    llm::GPT2Config c = llm::read_model_config(file.path());
    (void)c;
  } catch (const llm::Error&) {
  }
  try {
    llm::GPT2Config config;
    std::vector<float> params;
    if (mode & 2) {
      llm::LoadedModel m = llm::load_model(file.path());
      config = m.config;
      params = std::move(m.params);
    } else {
      config = llm::load_checkpoint(file.path(), &params).config;
    }
    if (params.size() != llm::num_parameters(config)) __builtin_trap();
    for (float x : params)
      if (!std::isfinite(x)) __builtin_trap();  // non-finite weights must be refused
  } catch (const llm::Error&) {
  }
  return 0;
}
