#include "host/hf_gpt2.h"

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "host/binary_io.h"
#include "host/checkpoint.h"
#include "host/error.h"
#include "host/memory.h"
#include "host/program.h"
#include "host/weights_check.h"

namespace llm {

using json = nlohmann::json;

static bool is_directory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

static std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
}

// ---- config.json ----

static int json_int(const std::string& src, const json& j, const char* key, int lo, int hi) {
  if (!j.contains(key)) fail(src, ": config.json has no '", key, "'");
  const json& v = j[key];
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
    fail(src, ": config.json '", key, "' = ", v.dump(), " is not an integer in [", lo, ", ", hi, "]");
  return (int)v.get<int64_t>();
}

GPT2Config parse_hf_config(const std::string& source, const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(source, ": not valid JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(source, ": config.json is not a JSON object");
  if (j.contains("model_type") && j["model_type"] != "gpt2")
    fail(source, ": model_type is ", j["model_type"].dump(), ", expected \"gpt2\"");
  GPT2Config c;
  c.channels = json_int(source, j, "n_embd", 1, 1 << 16);
  c.num_layers = json_int(source, j, "n_layer", 1, 4096);
  c.num_heads = json_int(source, j, "n_head", 1, 4096);
  c.vocab_size = json_int(source, j, "vocab_size", 1, 1 << 24);
  c.max_seq_len = json_int(source, j, j.contains("n_positions") ? "n_positions" : "n_ctx", 1, 1 << 20);
  c.padded_vocab_size = round_up(c.vocab_size, 128);
  c.qkv_bias = true;
  c.dropout = 0.0f;
  if (c.channels % c.num_heads != 0) fail(source, ": n_embd ", c.channels, " is not divisible by n_head ", c.num_heads);
  if (j.contains("layer_norm_epsilon")) {
    const json& e = j["layer_norm_epsilon"];
    if (!e.is_number() || std::fabs(e.get<double>() - 1e-5) > 1e-12)
      fail(source, ": layer_norm_epsilon = ", e.dump(), "; only 1e-5 is supported");
  }
  if (j.contains("activation_function")) {
    const json& a = j["activation_function"];
    if (a != "gelu_new" && a != "gelu_pytorch_tanh")
      fail(source, ": activation_function = ", a.dump(), "; only gelu_new (tanh GELU) is supported");
  }
  if (j.contains("n_inner") && !j["n_inner"].is_null() &&
      !(j["n_inner"].is_number_integer() && j["n_inner"].get<int64_t>() == 4 * (int64_t)c.channels))
    fail(source, ": n_inner = ", j["n_inner"].dump(), "; only null (4 * n_embd) is supported");
  auto require_bool = [&](const char* key, bool want) {
    if (j.contains(key) && j[key] != want)
      fail(source, ": ", key, " = ", j[key].dump(), "; only ", want ? "true" : "false", " is supported");
  };
  require_bool("scale_attn_weights", true);
  require_bool("scale_attn_by_inverse_layer_idx", false);
  require_bool("add_cross_attention", false);
  c.tied_head = true;
  if (j.contains("tie_word_embeddings")) {
    if (!j["tie_word_embeddings"].is_boolean()) fail(source, ": tie_word_embeddings is not a boolean");
    c.tied_head = j["tie_word_embeddings"].get<bool>();
  }
  return c;
}

GPT2Config read_hf_config(const std::string& path) {
  InFile f(path);
  if (f.size() > (64u << 20)) fail(path, ": ", f.size(), " bytes is too large for a config.json");
  std::string text(f.size(), '\0');
  f.read(text.data(), text.size(), "config.json");
  return parse_hf_config(path, text);
}

// ---- safetensors -> params ----

namespace {

// Finds tensors by their un-prefixed name and checks their shapes.
struct TensorTable {
  SafetensorsReader& st;
  std::string prefix;
  std::map<std::string, const StTensor*> by_name;  // un-prefixed name -> tensor
  mutable std::set<std::string> used;              // names get() has handed out
  bool dry = false;                                // true: only check names and shapes, copy nothing
  float* base = nullptr;                           // the parameter buffer (set for the copying pass)

  std::string full(const std::string& name) const { return name == "lm_head.weight" ? name : prefix + name; }

  const StTensor& get(const std::string& name, std::vector<int64_t> shape) const {
    auto it = by_name.find(name);
    if (it == by_name.end()) fail(st.name(), ": missing tensor '", full(name), "'");
    used.insert(name);
    const StTensor& t = *it->second;
    if (t.shape != shape) {
      std::ostringstream os;
      auto put = [&](const std::vector<int64_t>& s) {
        os << "(";
        for (size_t i = 0; i < s.size(); i++) os << (i ? ", " : "") << s[i];
        os << ")";
      };
      put(t.shape);
      os << ", expected ";
      put(shape);
      fail(st.name(), ": tensor '", t.name, "' has shape ", os.str());
    }
    return t;
  }
  // Reads a tensor as-is to base + at.
  void copy(const std::string& name, std::vector<int64_t> shape, size_t at) const {
    const StTensor& t = get(name, shape);
    if (!dry) st.read_f32(t, base + at);
  }
  // Reads a Conv1D weight stored (in, out) and writes it transposed, (out, in), into dst.
  void copy_transposed(const std::string& name, int64_t in, int64_t out, size_t at, std::vector<float>& tmp) const {
    const StTensor& t = get(name, {in, out});
    if (dry) return;
    float* dst = base + at;
    tmp.resize((size_t)(in * out));
    st.read_f32(t, tmp.data());
    const int64_t B = 32;  // tiles keep both sides cache-friendly
    for (int64_t i0 = 0; i0 < in; i0 += B)
      for (int64_t o0 = 0; o0 < out; o0 += B)
        for (int64_t i = i0; i < std::min(in, i0 + B); i++)
          for (int64_t o = o0; o < std::min(out, o0 + B); o++) dst[o * in + i] = tmp[i * out + o];
  }
};

// Standard GPT-2 head counts by width, used only when no config.json is available.
int heads_for_width(const std::string& src, int C) {
  switch (C) {
    case 768: return 12;
    case 1024: return 16;
    case 1280: return 20;
    case 1600: return 25;
  }
  fail(src, ": no config.json and n_embd ", C, " is not a standard GPT-2 width; cannot infer n_head (put config.json beside the file)");
}

}  // namespace

void load_hf_gpt2(SafetensorsReader& st, const GPT2Config* from_json, GPT2Config* config, std::vector<float>* params) {
  const std::string& src = st.name();
  const StHeader& h = st.header();
  // Which prefix does the file use?
  const bool bare = h.find("wte.weight") != nullptr, prefixed = h.find("transformer.wte.weight") != nullptr;
  if (bare && prefixed) fail(src, ": has both 'wte.weight' and 'transformer.wte.weight'; ambiguous");
  if (!bare && !prefixed) fail(src, ": missing tensor 'wte.weight' (not a GPT-2 safetensors file?)");
  TensorTable tt{st, prefixed ? "transformer." : "", {}, {}, false, nullptr};
  int max_layer = -1;
  for (const StTensor& t : h.tensors) {
    std::string n = t.name;
    if (n == "lm_head.weight") { tt.by_name[n] = &t; continue; }
    if (prefixed) {
      if (n.compare(0, 12, "transformer.") != 0) fail(src, ": unexpected tensor '", n, "'");
      n = n.substr(12);
    }
    // h.N.<rest>: validate N, skip the attention mask buffers.
    if (n.compare(0, 2, "h.") == 0) {
      size_t dot = n.find('.', 2);
      const std::string num = n.substr(2, dot == std::string::npos ? std::string::npos : dot - 2);
      if (dot == std::string::npos || num.empty() || num.size() > 4 || num.find_first_not_of("0123456789") != std::string::npos)
        fail(src, ": unexpected tensor '", t.name, "'");
      const std::string rest = n.substr(dot + 1);
      if (rest == "attn.bias" || rest == "attn.masked_bias") continue;
      max_layer = std::max(max_layer, std::stoi(num));
    }
    tt.by_name[n] = &t;
  }
  // Sizes: from config.json when given (and then checked against every shape), else from the shapes.
  GPT2Config c;
  if (from_json) c = *from_json;
  else {
    const StTensor* wte = tt.by_name.at("wte.weight");
    const StTensor* wpe = tt.by_name.count("wpe.weight") ? tt.by_name.at("wpe.weight") : nullptr;
    if (wte->shape.size() != 2 || wte->shape[0] < 1 || wte->shape[1] < 1 || wte->shape[0] > (1 << 24) ||
        wte->shape[1] > (1 << 16))
      fail(src, ": tensor '", wte->name, "' is not a (vocab, n_embd) matrix");
    if (!wpe) fail(src, ": missing tensor '", tt.prefix, "wpe.weight'");
    if (wpe->shape.size() != 2 || wpe->shape[0] < 1 || wpe->shape[0] > (1 << 20))
      fail(src, ": tensor '", wpe->name, "' is not a (n_positions, n_embd) matrix");
    if (max_layer < 0) fail(src, ": no transformer blocks (tensors 'h.N.*') found");
    c.vocab_size = (int)wte->shape[0];
    c.padded_vocab_size = round_up(c.vocab_size, 128);
    c.channels = (int)wte->shape[1];
    c.max_seq_len = (int)wpe->shape[0];
    c.num_layers = max_layer + 1;
    c.num_heads = heads_for_width(src, c.channels);
    c.qkv_bias = true;
    c.dropout = 0.0f;
    // No config.json: the head is untied exactly when the file carries an lm_head.weight.
    c.tied_head = tt.by_name.count("lm_head.weight") == 0;
  }
  if (max_layer >= c.num_layers)
    fail(src, ": has tensors for layer ", max_layer, " but the config has only ", c.num_layers, " layers");
  const int64_t V = c.vocab_size, C = c.channels, T = c.max_seq_len, L = c.num_layers;
  const auto off = param_offsets(c);
  std::vector<float> tmp;
  // Two passes over the same mapping: the first checks every name and shape (so a tiny hostile file cannot make
  // us allocate a huge buffer for a config its data does not back), the second allocates and copies.
  auto map_all = [&]() {
    tt.copy("wte.weight", {V, C}, off[kWte]);
    tt.copy("wpe.weight", {T, C}, off[kWpe]);
    for (int64_t l = 0; l < L; l++) {
      const std::string b = "h." + std::to_string(l) + ".";
      tt.copy(b + "ln_1.weight", {C}, off[kLn1w] + l * C);
      tt.copy(b + "ln_1.bias", {C}, off[kLn1b] + l * C);
      tt.copy_transposed(b + "attn.c_attn.weight", C, 3 * C, off[kQkvw] + l * 3 * C * C, tmp);
      if (c.qkv_bias) tt.copy(b + "attn.c_attn.bias", {3 * C}, off[kQkvb] + l * 3 * C);
      tt.copy_transposed(b + "attn.c_proj.weight", C, C, off[kAttprojw] + l * C * C, tmp);
      tt.copy(b + "attn.c_proj.bias", {C}, off[kAttprojb] + l * C);
      tt.copy(b + "ln_2.weight", {C}, off[kLn2w] + l * C);
      tt.copy(b + "ln_2.bias", {C}, off[kLn2b] + l * C);
      tt.copy_transposed(b + "mlp.c_fc.weight", C, 4 * C, off[kFcw] + l * 4 * C * C, tmp);
      tt.copy(b + "mlp.c_fc.bias", {4 * C}, off[kFcb] + l * 4 * C);
      tt.copy_transposed(b + "mlp.c_proj.weight", 4 * C, C, off[kFcprojw] + l * C * 4 * C, tmp);
      tt.copy(b + "mlp.c_proj.bias", {C}, off[kFcprojb] + l * C);
    }
    tt.copy("ln_f.weight", {C}, off[kLnfw]);
    tt.copy("ln_f.bias", {C}, off[kLnfb]);
    if (!c.tied_head) tt.copy("lm_head.weight", {V, C}, off[kLmHead]);
    else if (tt.by_name.count("lm_head.weight")) tt.get("lm_head.weight", {V, C});  // tied: HF ignores it; shape-check only
    for (const auto& kv : tt.by_name)  // anything we did not map means this is not the GPT-2 we think it is
      if (!tt.used.count(kv.first)) fail(src, ": unexpected tensor '", kv.second->name, "' (not part of a GPT-2 of this config)");
  };
  tt.dry = true;
  map_all();
  if (!params) {  // config only (read_model_config): every name and shape has been checked
    *config = c;
    return;
  }
  check_memory(src, static_cast<uint64_t>(num_parameters(c)) * 4,
               std::to_string(num_parameters(c)) + " fp32 parameters");
  params->assign(num_parameters(c), 0.0f);  // zero: wte/lm_head padding rows and a missing qkv bias stay 0
  tt.base = params->data();
  tt.dry = false;
  map_all();
  check_finite_params(src, c, params->data());
  *config = c;
}

// ---- any model file ----

static bool starts_with_llmc_magic(const std::string& path) {
  InFile f(path);
  if (f.size() < 4) return false;
  int32_t magic = 0;
  f.read(&magic, 4, "the first 4 bytes");
  return magic == kCheckpointMagic;
}

// Where a model path's weights and config.json are: an llm.c file (llmc = true), or a safetensors file plus an
// optional config.json (beside the file, or in the directory given).
struct ModelFiles {
  std::string file, config_json;
  bool llmc = false;
};

static ModelFiles locate_model(const std::string& path) {
  ModelFiles f;
  f.file = path;
  if (is_directory(path)) {
    f.file = path + "/model.safetensors";
    if (!file_exists(f.file)) {
      if (file_exists(path + "/model.safetensors.index.json"))
        fail(path, ": sharded safetensors checkpoints (model.safetensors.index.json) are not supported");
      fail(path, ": directory has no model.safetensors");
    }
    if (file_exists(path + "/config.json")) f.config_json = path + "/config.json";
    return f;
  }
  if (!file_exists(path)) fail(path, ": cannot open (no such file or directory)");
  // llm.c magic, or a .bin name: a .bin with a bad header is reported by the llm.c reader ("bad magic"), not
  // misread as a safetensors length.
  const bool bin_name = path.size() >= 4 && path.compare(path.size() - 4, 4, ".bin") == 0;
  f.llmc = bin_name || starts_with_llmc_magic(path);
  const std::string beside = dir_of(path) + "/config.json";
  if (!f.llmc && file_exists(beside)) f.config_json = beside;
  return f;
}

// Validates the safetensors file (first, so its errors are reported before config.json's) and maps it; params
// nullptr: names and shapes only.
static void load_safetensors_model(const ModelFiles& f, GPT2Config* config, std::vector<float>* params) {
  SafetensorsReader st(f.file);
  GPT2Config from_json;
  if (!f.config_json.empty()) from_json = read_hf_config(f.config_json);
  load_hf_gpt2(st, f.config_json.empty() ? nullptr : &from_json, config, params);
}

LoadedModel load_model(const std::string& path) {
  LoadedModel m;
  const ModelFiles f = locate_model(path);
  if (f.llmc) {
    CheckpointInfo info = load_checkpoint(f.file, &m.params);
    m.config = info.config;
    m.format = info.dtype == CheckpointDtype::kFp32 ? "llm.c v3 (fp32)" : "llm.c v5 (bf16)";
    return m;
  }
  load_safetensors_model(f, &m.config, &m.params);
  m.format = "safetensors";
  return m;
}

GPT2Config read_model_config(const std::string& path) {
  const ModelFiles f = locate_model(path);
  if (f.llmc) return read_checkpoint_header(f.file).config;
  GPT2Config c;
  load_safetensors_model(f, &c, nullptr);
  return c;
}

bool looks_like_model_path(const std::string& s) {
  auto ends_with = [&](const char* e) {
    const size_t n = std::strlen(e);
    return s.size() >= n && s.compare(s.size() - n, n, e) == 0;
  };
  return file_exists(s) || is_directory(s) || s.find('/') != std::string::npos || ends_with(".bin") ||
         ends_with(".safetensors");
}

void check_config_matches(const std::string& source, const GPT2Config& want, const GPT2Config& got) {
  auto cmp = [&](const char* field, long a, long b) {
    if (a != b) fail(source, ": model ", field, " = ", b, ", but the requested config has ", a);
  };
  cmp("max_seq_len", want.max_seq_len, got.max_seq_len);
  cmp("vocab_size", want.vocab_size, got.vocab_size);
  cmp("padded_vocab_size", want.padded_vocab_size, got.padded_vocab_size);
  cmp("num_layers", want.num_layers, got.num_layers);
  cmp("num_heads", want.num_heads, got.num_heads);
  cmp("channels", want.channels, got.channels);
  cmp("qkv_bias", want.qkv_bias, got.qkv_bias);
  cmp("tied_head", want.tied_head, got.tied_head);
}

// ---- export ----

void export_hf_gpt2(const std::string& dir, const GPT2Config& c, const float* p) {
  if (!is_directory(dir) && mkdir(dir.c_str(), 0755) != 0) fail(dir, ": cannot create output directory");
  const int64_t V = c.vocab_size, C = c.channels, T = c.max_seq_len, L = c.num_layers;
  const auto off = param_offsets(c);
  // Transposed copies of the four linear weights: ours (out,in) -> Conv1D (in,out).
  std::vector<std::vector<float>> store;
  auto transposed = [&](const float* w, int64_t out, int64_t in) {
    store.emplace_back((size_t)(out * in));
    float* t = store.back().data();
    for (int64_t o = 0; o < out; o++)
      for (int64_t i = 0; i < in; i++) t[i * out + o] = w[o * in + i];
    return (const float*)t;
  };
  store.reserve(4 * L + 1);
  std::vector<float> zeros(c.qkv_bias ? 0 : 3 * C, 0.0f);
  std::vector<StWriteTensor> ts;
  const std::string pre = "transformer.";
  ts.push_back({pre + "wte.weight", {V, C}, p + off[kWte]});  // first V rows; padding rows are dropped
  ts.push_back({pre + "wpe.weight", {T, C}, p + off[kWpe]});
  for (int64_t l = 0; l < L; l++) {
    const std::string b = pre + "h." + std::to_string(l) + ".";
    ts.push_back({b + "ln_1.weight", {C}, p + off[kLn1w] + l * C});
    ts.push_back({b + "ln_1.bias", {C}, p + off[kLn1b] + l * C});
    ts.push_back({b + "attn.c_attn.weight", {C, 3 * C}, transposed(p + off[kQkvw] + l * 3 * C * C, 3 * C, C)});
    ts.push_back({b + "attn.c_attn.bias", {3 * C}, c.qkv_bias ? p + off[kQkvb] + l * 3 * C : zeros.data()});
    ts.push_back({b + "attn.c_proj.weight", {C, C}, transposed(p + off[kAttprojw] + l * C * C, C, C)});
    ts.push_back({b + "attn.c_proj.bias", {C}, p + off[kAttprojb] + l * C});
    ts.push_back({b + "ln_2.weight", {C}, p + off[kLn2w] + l * C});
    ts.push_back({b + "ln_2.bias", {C}, p + off[kLn2b] + l * C});
    ts.push_back({b + "mlp.c_fc.weight", {C, 4 * C}, transposed(p + off[kFcw] + l * 4 * C * C, 4 * C, C)});
    ts.push_back({b + "mlp.c_fc.bias", {4 * C}, p + off[kFcb] + l * 4 * C});
    ts.push_back({b + "mlp.c_proj.weight", {4 * C, C}, transposed(p + off[kFcprojw] + l * C * 4 * C, C, 4 * C)});
    ts.push_back({b + "mlp.c_proj.bias", {C}, p + off[kFcprojb] + l * C});
  }
  ts.push_back({pre + "ln_f.weight", {C}, p + off[kLnfw]});
  ts.push_back({pre + "ln_f.bias", {C}, p + off[kLnfb]});
  if (!c.tied_head) ts.push_back({"lm_head.weight", {V, C}, p + off[kLmHead]});
  save_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}});

  nlohmann::ordered_json j;
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["activation_function"] = "gelu_new";
  j["n_embd"] = C;
  j["n_layer"] = L;
  j["n_head"] = c.num_heads;
  j["n_positions"] = T;
  j["n_ctx"] = T;
  j["n_inner"] = nullptr;
  j["vocab_size"] = V;
  j["layer_norm_epsilon"] = 1e-5;
  j["initializer_range"] = 0.02;
  j["embd_pdrop"] = c.dropout;
  j["attn_pdrop"] = c.dropout;
  j["resid_pdrop"] = c.dropout;
  j["scale_attn_weights"] = true;
  j["scale_attn_by_inverse_layer_idx"] = false;
  j["reorder_and_upcast_attn"] = false;
  j["tie_word_embeddings"] = c.tied_head;
  // GPT-2's <|endoftext|>; null for smaller vocabularies (transformers' default 50256 would be out of range).
  if (V > 50256) { j["bos_token_id"] = 50256; j["eos_token_id"] = 50256; }
  else { j["bos_token_id"] = nullptr; j["eos_token_id"] = nullptr; }
  const std::string text = j.dump(2) + "\n";
  AtomicFile out(dir + "/config.json");
  out.write(text.data(), text.size());
  out.commit();
}

CLI::App& add_export_command(Program& p) {
  struct ExportCli {
    std::string model, out;
  };
  auto e = std::make_shared<ExportCli>();
  CLI::App& cmd = p.add("export", "convert a GPT-2 model (llm.c .bin, model.safetensors or a HF directory) to a HF "
                        "directory (model.safetensors + config.json)", [e] {
                          LoadedModel m = load_model(e->model);
                          export_hf_gpt2(e->out, m.config, m.params.data());
                          std::cerr << "exported " << e->model << " (" << m.format << ", "
                                    << num_parameters(m.config) << " parameters) to " << e->out
                                    << "/model.safetensors + config.json\n";
                          return 0;
                        });
  cmd.add_option("--model,-m", e->model, "input model")->required();
  cmd.add_option("--out,-o", e->out, "output directory")->required();
  add_allow_nonfinite_flag(cmd);
  return cmd;
}

}  // namespace llm
