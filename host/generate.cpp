#include "host/generate.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>

#include "host/cli.h"
#include "host/error.h"
#include "host/weights_check.h"
#include "host/hf_gpt2.h"
#include "host/program.h"
#include "host/tokenizer.h"

namespace llm {

static double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

static void check_prompt(const std::vector<int>& prompt, const GPT2Config& c) {
  if (prompt.empty()) fail("empty prompt: give at least one token (--prompt, --prompt-ids or stdin)");
  if ((long)prompt.size() > c.max_seq_len)
    fail("prompt has ", prompt.size(), " tokens but the model's context is ", c.max_seq_len,
         " tokens; shorten the prompt");
  for (size_t i = 0; i < prompt.size(); i++)
    if (prompt[i] < 0 || prompt[i] >= c.vocab_size)
      fail("prompt token ", i, " has id ", prompt[i], ", outside the model's vocabulary [0, ", c.vocab_size, ")");
}

std::vector<int> generate_tokens(LogitsModel& model, const std::vector<int>& prompt, const GenerateOptions& opt,
                                 const std::function<void(int)>& on_token, GenerateStats* stats) {
  const GPT2Config& c = model.config();
  check_prompt(prompt, c);
  if (opt.max_new_tokens < 0) fail("--max-new-tokens ", opt.max_new_tokens, " is invalid: must be >= 0");
  Sampler sampler(opt.sampling);
  GenerateStats st;
  st.prompt_tokens = (int)prompt.size();
  std::vector<int> ctx = prompt, out;
  auto t0 = std::chrono::steady_clock::now();
  const float* logits = opt.max_new_tokens > 0 ? model.prefill(ctx.data(), (int)ctx.size()) : nullptr;
  st.prefill_seconds = seconds_since(t0);
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < opt.max_new_tokens; i++) {
    const int tok = sampler.sample(logits, c.vocab_size);
    if (opt.stop_at_eos && tok == opt.eos_id) break;  // EOS ends the text and is not part of it
    out.push_back(tok);
    ctx.push_back(tok);
    if (on_token) on_token(tok);
    if (i + 1 == opt.max_new_tokens) break;  // no forward for a token nobody will sample
    if ((long)ctx.size() <= c.max_seq_len) {
      logits = model.step(tok);
    } else {  // context full: the book's crop to the last max_seq_len tokens, recomputed from position 0
      logits = model.prefill(ctx.data() + ctx.size() - c.max_seq_len, c.max_seq_len);
      st.reprefills++;
    }
  }
  st.decode_seconds = seconds_since(t1);
  st.new_tokens = (int)out.size();
  if (stats) *stats = st;
  return out;
}

static std::vector<int> parse_ids(const std::string& s) {
  std::vector<int> ids;
  std::string item;
  std::istringstream is(s);
  while (std::getline(is, item, ',')) {
    size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    if (a == std::string::npos) fail("--prompt-ids '", s, "': empty entry");
    item = item.substr(a, b - a + 1);
    if (item.find_first_not_of("0123456789") != std::string::npos || item.size() > 9)
      fail("--prompt-ids '", s, "': '", item, "' is not a token id");
    ids.push_back(std::stoi(item));
  }
  return ids;
}

namespace {

// The flags of `generate` (filled by CLI11 while parsing).
struct GenerateCli {
  std::string model_path, prompt_text, prompt_ids;
  GenerateOptions opt;
  bool no_kv = false, ids_out = false, no_echo = false;
  CLI::Option* prompt_flag = nullptr;
};

void add_generate_options(CLI::App& app, GenerateCli& g) {
  GenerateOptions& opt = g.opt;
  app.add_option("--model,-m", g.model_path, "llm.c .bin, model.safetensors, or a HF directory")->required();
  g.prompt_flag = app.add_option("--prompt,-p", g.prompt_text, "prompt text (default: read stdin)");
  app.add_option("--prompt-ids", g.prompt_ids, "prompt as comma-separated token ids")->excludes(g.prompt_flag);
  app.add_option("--max-new-tokens,-n", opt.max_new_tokens, "tokens to generate")->capture_default_str();
  app.add_option("--temperature,-t", opt.sampling.temperature, "0 = greedy argmax")->capture_default_str();
  app.add_option("--top-k,-k", opt.sampling.top_k, "keep logits >= the k-th largest (0 = off)")->capture_default_str();
  app.add_option("--top-p", opt.sampling.top_p, "nucleus probability mass (1 = off)")->capture_default_str();
  app.add_option("--seed,-s", opt.sampling.seed, "sampling seed (0..2^64-1)")
      ->check(strict_uint64())
      ->capture_default_str();
  app.add_flag("--stop-at-eos", opt.stop_at_eos, "stop when the EOS token is sampled (it is not printed)");
  app.add_option("--eos-id", opt.eos_id, "EOS token id")->capture_default_str();
  app.add_flag("--no-kv-cache", g.no_kv, "recompute the whole context for every token");
  app.add_flag("--ids", g.ids_out, "print token ids instead of decoded text");
  app.add_flag("--no-echo", g.no_echo, "do not print the prompt before the generated text");
  add_allow_nonfinite_flag(app);
}

int run_generate(GenerateCli& g, const LogitsModelFactory& factory) {
  const GenerateOptions& opt = g.opt;
  const std::string& model_path = g.model_path;
  const std::string& prompt_ids = g.prompt_ids;
  const bool no_kv = g.no_kv, ids_out = g.ids_out, no_echo = g.no_echo;
  std::string& prompt_text = g.prompt_text;
  validate(opt.sampling);
  if (opt.max_new_tokens < 0) fail("--max-new-tokens ", opt.max_new_tokens, " is invalid: must be >= 0");
  // Prompt: ids, text, or stdin (one trailing newline dropped).
  std::vector<int> prompt;
  std::unique_ptr<Tokenizer> tok;
  const bool need_tokenizer = prompt_ids.empty() || !ids_out;
  if (need_tokenizer) tok = std::make_unique<Tokenizer>(Tokenizer::from_default());
  if (!prompt_ids.empty()) {
    prompt = parse_ids(prompt_ids);
  } else {
    if (g.prompt_flag->count() == 0) {
      prompt_text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
      if (!prompt_text.empty() && prompt_text.back() == '\n') prompt_text.pop_back();
    }
    prompt = tok->encode(prompt_text, SpecialMode::kAllowed);
  }
  LoadedModel m = load_model(model_path);
  check_prompt(prompt, m.config);
  const GPT2Config config = m.config;
  auto model = factory(config, std::move(m.params), !no_kv);
  std::cerr << "generate: " << model_path << " (" << m.format << ", L=" << config.num_layers
            << " C=" << config.channels << " V=" << config.vocab_size << " maxT=" << config.max_seq_len << "), "
            << prompt.size() << " prompt tokens, kv cache " << (no_kv ? "off" : "on") << "\n";
  // Stream: each token goes out as soon as it is chosen.
  if (!no_echo) {
    if (ids_out) for (int id : prompt) std::printf("%d ", id);
    else std::fputs(tok->decode(prompt).c_str(), stdout);
    std::fflush(stdout);
  }
  auto emit = [&](int id) {
    if (ids_out) std::printf("%d ", id);
    else {
      const std::string s = tok->decode_token(id);
      std::fwrite(s.data(), 1, s.size(), stdout);
    }
    std::fflush(stdout);
  };
  GenerateStats st;
  generate_tokens(*model, prompt, opt, emit, &st);
  std::printf("\n");
  std::fflush(stdout);
  std::fprintf(stderr, "generate: prefill %d tokens in %.1f ms; %d new tokens in %.3f s = %.1f tok/s%s\n",
               st.prompt_tokens, 1e3 * st.prefill_seconds, st.new_tokens, st.decode_seconds,
               st.decode_seconds > 0 ? st.new_tokens / st.decode_seconds : 0.0,
               st.reprefills ? (" (" + std::to_string(st.reprefills) + " context re-prefills)").c_str() : "");
  return 0;
}

}  // namespace

CLI::App& add_generate_command(Program& p, const LogitsModelFactory& factory) {
  auto g = std::make_shared<GenerateCli>();
  CLI::App& cmd = p.add("generate", "generate text with a GPT-2 model (KV cache; streams tokens to stdout, "
                        "tokens/s to stderr)", [g, factory] { return run_generate(*g, factory); });
  add_generate_options(cmd, *g);
  return cmd;
}

}  // namespace llm
