// hf_gpt2.h — Hugging Face / OpenAI GPT-2 weights <-> our contiguous parameter buffer (gpt2_config.h order).
//
// HF GPT-2 (openai-community/gpt2, -medium, -large, -xl) safetensors keys, optionally prefixed "transformer.":
//   wte.weight (V,C)  wpe.weight (maxT,C)  ln_f.{weight,bias} (C)  [lm_head.weight (V,C) only when untied]
//   h.N.ln_1.{weight,bias} (C)          h.N.ln_2.{weight,bias} (C)
//   h.N.attn.c_attn.weight (C,3C) bias (3C)   h.N.attn.c_proj.weight (C,C) bias (C)
//   h.N.mlp.c_fc.weight (C,4C) bias (4C)      h.N.mlp.c_proj.weight (4C,C) bias (C)
//   h.N.attn.bias / h.N.attn.masked_bias: causal-mask buffers, ignored.
// Why transposes: HF's Conv1D stores weights (in, out) and computes x·W; our linears are nn.Linear-style (out, in).
// c_attn's columns are [q | k | v], which after the transpose are exactly our qkvw rows. wte is tied to the
// LM head unless config.json says "tie_word_embeddings": false; wte is zero-padded from V to Vp rows.
// Config: read from config.json (in the directory given, or next to the .safetensors file). Without one, the
// sizes come from the tensor shapes and n_head from the standard GPT-2 sizes (C 768/1024/1280/1600).
#pragma once
#include <string>
#include <vector>

#include "host/gpt2_config.h"
#include "host/safetensors.h"

namespace CLI {
class App;
}

namespace llm {

class Program;

// Parses HF config.json text. Checks model_type gpt2, layer_norm_epsilon 1e-5, activation gelu_new (or the
// identical gelu_pytorch_tanh), n_inner null or 4*n_embd, no per-layer attention scaling; fails otherwise.
GPT2Config parse_hf_config(const std::string& source, const std::string& text);
GPT2Config read_hf_config(const std::string& path);

// Maps a validated safetensors file into params (num_parameters(*config) floats). `from_json` (may be null) is the
// config.json config; shapes must agree with it. On return *config holds the model's config. params == nullptr:
// only checks every tensor name and shape and sets *config (no weights are read).
void load_hf_gpt2(SafetensorsReader& st, const GPT2Config* from_json, GPT2Config* config, std::vector<float>* params);

struct LoadedModel {
  GPT2Config config;
  std::vector<float> params;
  std::string format;  // "llm.c v3", "llm.c v5", "safetensors"
};

// Loads any supported model: an llm.c checkpoint (.bin, recognised by its magic), a model.safetensors file, or a
// directory holding model.safetensors (+ config.json).
LoadedModel load_model(const std::string& path);

// The config load_model(path) would return, without reading the weights: the llm.c header, or the safetensors
// header (+ config.json) with every tensor name and shape checked. Same errors as load_model.
GPT2Config read_model_config(const std::string& path);

// Trainers' -e: true when `s` names a model (an existing file or directory, a path with '/', or a name ending in
// .bin / .safetensors) rather than a preset name.
bool looks_like_model_path(const std::string& s);

// Fails with "<source>: model <field> = X, but the requested config has Y" on the first differing field.
void check_config_matches(const std::string& source, const GPT2Config& requested, const GPT2Config& got);

// Writes <dir>/model.safetensors + <dir>/config.json that transformers' GPT2LMHeadModel.from_pretrained loads
// unchanged (keys with the "transformer." prefix, Conv1D orientation, wte cropped to V rows, F32).
// A model without qkv bias gets zero c_attn biases (equivalent).
void export_hf_gpt2(const std::string& dir, const GPT2Config& config, const float* params);

// The `export --model PATH --out DIR` verb of a program (host/program.h): converts any loadable model to a HF
// directory.
CLI::App& add_export_command(Program& p);

}  // namespace llm
