// HF GPT-2 loading/export against the transformers fixtures (scripts/gen_hf_fixtures.py): logits within 1e-5
// (relative to the largest logit), greedy tokens exact, bad files rejected with clear messages.
// Why 1e-5: transformers' fp32 logits (stored with 9 significant digits: exact floats) vs ours, the same weights,
// only the summation orders differ. Forward reductions have K ≤ 4C = 192 terms (C ≤ 48, prompt ≤ 64 positions):
// per op two orders differ by ≤ 2γ_192 = 2.3e-5·Σ|terms| (γ_K = K·u/(1 − K·u), u = 2^-24); the ~20 ops of a
// 2–3 layer forward round independently, ≈ √(20·192)·u = 3.7e-6 of the terms' scale in quadrature; 1e-5 is ~3×
// that. A wrong op (mask, bias, layout) is O(1). The greedy tokens are exact because HF's smallest top-1 margin
// (ref.json min_greedy_margin: 0.0073 for tiny_b) is > 100× 1e-5 of the largest logit (6.8e-5).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "cpu/gpt2_infer.h"
#include "host/checkpoint.h"
#include "host/error.h"
#include "host/hf_gpt2.h"
#include "test_weights_util.h"

namespace {

struct Ref {
  std::vector<int> prompt, greedy;
  std::vector<std::vector<float>> logits;  // (T, V)
};

Ref load_ref(const std::string& name) {
  nlohmann::json j = wt::read_json(wt::fixture(name + "/ref.json"));
  Ref r;
  r.prompt = j["prompt"].get<std::vector<int>>();
  r.greedy = j["greedy"].get<std::vector<int>>();
  r.logits = j["logits"].get<std::vector<std::vector<float>>>();
  return r;
}

// max |got - want| / max |want| over all V entries of one position.
double rel_err(const float* got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); i++) {
    num = std::max(num, (double)std::fabs(got[i] - want[i]));
    den = std::max(den, (double)std::fabs(want[i]));
  }
  return num / den;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const llm::Error& e) {
    return e.what();
  }
  return "";
}

// All tensors of a safetensors file as fp32 (name -> (shape, data)), for writing modified copies.
struct Tensors {
  std::vector<std::string> names;
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> t;
};
Tensors read_all(const std::string& path) {
  llm::SafetensorsReader r(path);
  Tensors out;
  for (const llm::StTensor& s : r.header().tensors) {
    std::vector<float> d(s.numel);
    r.read_f32(s, d.data());
    out.names.push_back(s.name);
    out.t[s.name] = {s.shape, d};
  }
  return out;
}
void write_all(const std::string& path, const Tensors& ts) {
  std::vector<llm::StWriteTensor> w;
  for (const std::string& n : ts.names) w.push_back({n, ts.t.at(n).first, ts.t.at(n).second.data()});
  llm::save_safetensors(path, w, {{"format", "pt"}});
}

class HfFixture : public ::testing::TestWithParam<const char*> {};

}  // namespace

// Logits of every prompt position (KV-cache path fed token by token, and the uncached GPT2Model path) vs HF.
TEST_P(HfFixture, LogitsMatchTransformers) {
  const std::string name = GetParam();
  Ref ref = load_ref(name);
  llm::LoadedModel m = llm::load_model(wt::fixture(name));
  EXPECT_EQ(m.config.vocab_size, (int)ref.logits[0].size());
  EXPECT_EQ(m.config.padded_vocab_size % 128, 0);
  llm::UncachedGPT2 uncached(m.config, m.params);
  llm::KVCacheGPT2 kv(m.config, std::vector<float>(m.params));
  for (size_t t = 0; t < ref.prompt.size(); t++) {
    const float* a = t == 0 ? kv.prefill(ref.prompt.data(), 1) : kv.step(ref.prompt[t]);
    EXPECT_LE(rel_err(a, ref.logits[t]), 1e-5) << name << " kv position " << t;
    const float* b = uncached.prefill(ref.prompt.data(), (int)t + 1);
    EXPECT_LE(rel_err(b, ref.logits[t]), 1e-5) << name << " uncached position " << t;
  }
  // Prefill of the whole prompt (GEMM path) gives the last position's logits too.
  EXPECT_LE(rel_err(kv.prefill(ref.prompt.data(), (int)ref.prompt.size()), ref.logits.back()), 1e-5);
}

// Greedy continuation equals HF generate(do_sample=False), with and without the KV cache.
TEST_P(HfFixture, GreedyTokensMatchTransformers) {
  const std::string name = GetParam();
  Ref ref = load_ref(name);
  for (bool kv : {true, false}) {
    llm::LoadedModel m = llm::load_model(wt::fixture(name));
    auto model = llm::make_cpu_logits_model(m.config, std::move(m.params), kv);
    llm::GenerateOptions opt;
    opt.max_new_tokens = (int)ref.greedy.size();
    opt.sampling.temperature = 0.0f;
    EXPECT_EQ(llm::generate_tokens(*model, ref.prompt, opt), ref.greedy) << name << (kv ? " kv" : " uncached");
  }
}

INSTANTIATE_TEST_SUITE_P(Weights, HfFixture, ::testing::Values("tiny_a", "tiny_b", "tiny_a_f16"));

TEST(WeightsHf, ConfigAndLayout) {
  llm::LoadedModel a = llm::load_model(wt::fixture("tiny_a"));
  EXPECT_EQ(a.format, "safetensors");
  EXPECT_EQ(a.config.channels, 32);
  EXPECT_EQ(a.config.num_layers, 2);
  EXPECT_EQ(a.config.num_heads, 4);
  EXPECT_EQ(a.config.vocab_size, 500);
  EXPECT_EQ(a.config.padded_vocab_size, 512);
  EXPECT_EQ(a.config.max_seq_len, 64);
  EXPECT_TRUE(a.config.tied_head);
  llm::LoadedModel b = llm::load_model(wt::fixture("tiny_b/model.safetensors"));  // file: config.json beside it
  EXPECT_FALSE(b.config.tied_head);
  EXPECT_EQ(b.config.padded_vocab_size, 384);
  // Transpose: our qkvw row o, column i == HF c_attn.weight[i][o]; padding rows of wte are zero.
  Tensors hf = read_all(wt::fixture("tiny_a/model.safetensors"));
  const auto& w = hf.t.at("transformer.h.1.attn.c_attn.weight").second;  // (32, 96)
  const float* q = a.params.data() + llm::param_offsets(a.config)[llm::kQkvw] + 3 * 32 * 32;  // layer 1
  for (int o : {0, 40, 95})
    for (int i : {0, 17, 31}) EXPECT_EQ(q[o * 32 + i], w[i * 96 + o]);
  const float* wte = a.params.data();
  for (int r = 500; r < 512; r++)
    for (int c = 0; c < 32; c++) ASSERT_EQ(wte[r * 32 + c], 0.0f);
}

// Un-prefixed keys (openai-community/gpt2 layout) with attention-mask buffers, and no config.json beside the file
// for a non-standard width: the n_head inference refuses with a clear message; with a config it loads the same.
TEST(WeightsHf, BareKeysAndMaskBuffersTolerated) {
  const std::string dir = wt::temp_dir("bare");
  Tensors ts = read_all(wt::fixture("tiny_a/model.safetensors"));
  Tensors bare;
  std::vector<float> mask(64 * 64, 1.0f), masked_bias = {-1e4f};
  for (const std::string& n : ts.names) {
    std::string k = n.substr(std::strlen("transformer."));
    bare.names.push_back(k);
    bare.t[k] = ts.t[n];
  }
  for (int l = 0; l < 2; l++) {
    const std::string b = "h." + std::to_string(l) + ".attn.";
    bare.names.push_back(b + "bias");
    bare.t[b + "bias"] = {{1, 1, 64, 64}, mask};
    bare.names.push_back(b + "masked_bias");
    bare.t[b + "masked_bias"] = {{}, masked_bias};
  }
  write_all(dir + "/model.safetensors", bare);
  EXPECT_NE(error_of([&] { llm::load_model(dir + "/model.safetensors"); }).find("cannot infer n_head"), std::string::npos);
  wt::write_bytes(dir + "/config.json", wt::read_bytes(wt::fixture("tiny_a/config.json")));
  llm::LoadedModel got = llm::load_model(dir);
  llm::LoadedModel want = llm::load_model(wt::fixture("tiny_a"));
  EXPECT_EQ(got.params, want.params);
}

TEST(WeightsHf, BadModelFiles) {
  const std::string dir = wt::temp_dir("bad");
  const std::string cfg = wt::read_bytes(wt::fixture("tiny_a/config.json"));
  auto attempt = [&](const Tensors& ts, const std::string& config_text) {
    write_all(dir + "/model.safetensors", ts);
    wt::write_bytes(dir + "/config.json", config_text);
    return error_of([&] { llm::load_model(dir); });
  };
  const Tensors orig = read_all(wt::fixture("tiny_a/model.safetensors"));
  {  // missing tensor
    Tensors t = orig;
    t.names.erase(std::find(t.names.begin(), t.names.end(), "transformer.ln_f.bias"));
    EXPECT_NE(attempt(t, cfg).find("missing tensor 'transformer.ln_f.bias'"), std::string::npos);
  }
  {  // wrong shape: c_fc stored (out, in) instead of Conv1D (in, out)
    Tensors t = orig;
    t.t["transformer.h.0.mlp.c_fc.weight"].first = {128, 32};
    std::string e = attempt(t, cfg);
    EXPECT_NE(e.find("'transformer.h.0.mlp.c_fc.weight' has shape (128, 32), expected (32, 128)"), std::string::npos) << e;
    EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
  }
  {  // unexpected tensor
    Tensors t = orig;
    t.names.push_back("transformer.h.0.attn.rotary");
    t.t["transformer.h.0.attn.rotary"] = {{1}, {0.0f}};
    EXPECT_NE(attempt(t, cfg).find("unexpected tensor 'transformer.h.0.attn.rotary'"), std::string::npos);
  }
  // config.json that does not match the tensors / is unsupported
  auto with = [&](const std::string& key, const std::string& value) {
    nlohmann::json j = nlohmann::json::parse(cfg);
    j[key] = nlohmann::json::parse(value);
    return j.dump();
  };
  EXPECT_NE(attempt(orig, with("n_layer", "3")).find("missing tensor 'transformer.h.2.ln_1.weight'"), std::string::npos);
  EXPECT_NE(attempt(orig, with("n_layer", "1")).find("has tensors for layer 1 but the config has only 1 layers"),
            std::string::npos);
  EXPECT_NE(attempt(orig, with("vocab_size", "512")).find("'transformer.wte.weight' has shape (500, 32), expected (512, 32)"),
            std::string::npos);
  EXPECT_NE(attempt(orig, with("layer_norm_epsilon", "1e-6")).find("layer_norm_epsilon"), std::string::npos);
  EXPECT_NE(attempt(orig, with("activation_function", "\"relu\"")).find("only gelu_new"), std::string::npos);
  EXPECT_NE(attempt(orig, with("n_head", "5")).find("not divisible"), std::string::npos);
  EXPECT_NE(attempt(orig, with("model_type", "\"llama\"")).find("model_type"), std::string::npos);
  EXPECT_NE(attempt(orig, with("tie_word_embeddings", "false")).find("missing tensor 'lm_head.weight'"), std::string::npos);
  EXPECT_NE(attempt(orig, "{not json").find("config.json: not valid JSON"), std::string::npos);
  // Not a model at all.
  wt::write_bytes(dir + "/junk.bin", "hello world, definitely not a model");
  EXPECT_NE(error_of([&] { llm::load_model(dir + "/junk.bin"); }).find("junk.bin"), std::string::npos);
  EXPECT_NE(error_of([&] { llm::load_model(dir + "/nope"); }).find("nope: cannot open"), std::string::npos);
  // A requested config that differs.
  llm::GPT2Config want = llm::preset_config("tiny");
  llm::LoadedModel a = llm::load_model(wt::fixture("tiny_a"));
  EXPECT_NE(error_of([&] { llm::check_config_matches("tiny_a", want, a.config); }).find("tiny_a: model vocab_size = 500, but the requested config has 256"),
            std::string::npos);
  EXPECT_NO_THROW(llm::check_config_matches("tiny_a", a.config, a.config));
}

// llm.c .bin written by host/checkpoint loads through load_model with the same parameters.
TEST(WeightsHf, LlmcCheckpointThroughLoadModel) {
  const std::string dir = wt::temp_dir("llmc");
  llm::LoadedModel b = llm::load_model(wt::fixture("tiny_b"));
  llm::save_checkpoint(dir + "/model.bin", b.config, b.params.data());
  llm::LoadedModel c = llm::load_model(dir + "/model.bin");
  EXPECT_EQ(c.format, "llm.c v3 (fp32)");
  EXPECT_FALSE(c.config.tied_head);
  EXPECT_EQ(c.params, b.params);
}

// Export: loads back bit-identically, and produces exactly the bytes that transformers verified
// (scripts/gen_hf_fixtures.py --check-export records size + FNV-1a of each export it loaded and compared).
TEST(WeightsHf, ExportRoundTripAndTransformersVerifiedBytes) {
  nlohmann::json check = wt::read_json(wt::fixture("export_check.json"));
  for (const char* name : {"tiny_a", "tiny_b"}) {
    const std::string dir = wt::temp_dir(std::string("export_") + name);
    llm::LoadedModel m = llm::load_model(wt::fixture(name));
    llm::export_hf_gpt2(dir, m.config, m.params.data());
    llm::LoadedModel back = llm::load_model(dir);
    EXPECT_EQ(back.params, m.params) << name;
    EXPECT_EQ(back.config.tied_head, m.config.tied_head);
    nlohmann::json cfg = wt::read_json(dir + "/config.json");
    EXPECT_EQ(cfg["eos_token_id"], nullptr);  // vocab < 50257: transformers' default 50256 would be out of range
    const std::string bytes = wt::read_bytes(dir + "/model.safetensors");
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char ch : bytes) h = (h ^ ch) * 0x100000001b3ull;
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
    ASSERT_TRUE(check.contains(name));
    EXPECT_TRUE(check[name]["ok"].get<bool>()) << name;
    EXPECT_EQ(bytes.size(), check[name]["file_size"].get<size_t>()) << name;
    EXPECT_EQ(std::string(hex), check[name]["fnv1a64"].get<std::string>()) << name;
  }
}
