// finetune_init.cpp — writes a randomly initialised GPT-2 llm.c checkpoint of a custom small size
// (GPT-2 vocabulary), the starting point for `gpt2_cpu train --init` when the presets are too large for the
// fine-tuning figures on a CPU.
//   finetune_init --out model.bin [--layers 4 --channels 128 --heads 4 --context 256 --seed 42]
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cpu/gpt2_model.h"
#include "host/checkpoint.h"
#include "host/error.h"

int main(int argc, char** argv) {
  CLI::App app("finetune_init — random-init GPT-2 checkpoint of a custom size");
  std::string out;
  llm::GPT2Config c;
  c.num_layers = 4;
  c.channels = 128;
  c.num_heads = 4;
  c.max_seq_len = 256;
  uint64_t seed = 42;
  app.add_option("--out", out, "output checkpoint")->required();
  app.add_option("--layers", c.num_layers)->capture_default_str();
  app.add_option("--channels", c.channels)->capture_default_str();
  app.add_option("--heads", c.num_heads)->capture_default_str();
  app.add_option("--context", c.max_seq_len)->capture_default_str();
  app.add_option("--seed", seed)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    llm::GPT2Model m(c);
    m.init_gpt2(seed);
    llm::save_checkpoint(out, c, m.params());
    std::printf("wrote %s (%zu parameters)\n", out.c_str(), m.num_params());
  } catch (const llm::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return llm::kExitBadInput;
  }
  return 0;
}
