// Generation loop and the `generate` subcommand: KV cache == uncached (greedy and seeded sampling, also past the
// context limit where the crop rule re-prefills), EOS handling, prompt checks, CLI exit codes and messages.
#include <gtest/gtest.h>

#include "cpu/gpt2_infer.h"
#include "host/checkpoint.h"
#include "host/error.h"
#include "host/hf_gpt2.h"
#include "host/tokenizer.h"
#include "test_weights_util.h"

namespace {

std::vector<int> ref_prompt(const std::string& name) { return wt::read_json(wt::fixture(name + "/ref.json"))["prompt"]; }
std::vector<int> ref_greedy(const std::string& name) { return wt::read_json(wt::fixture(name + "/ref.json"))["greedy"]; }

std::vector<int> run_gen(const std::string& name, bool kv, const llm::GenerateOptions& opt, const std::vector<int>& prompt,
                         llm::GenerateStats* st = nullptr) {
  llm::LoadedModel m = llm::load_model(wt::fixture(name));
  auto model = llm::make_cpu_logits_model(m.config, std::move(m.params), kv);
  return llm::generate_tokens(*model, prompt, opt, nullptr, st);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const llm::Error& e) {
    return e.what();
  }
  return "";
}

std::string join_ids(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); i++) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

}  // namespace

// Greedy and sampled generation past max_seq_len (64): identical tokens with and without the cache.
TEST(Generate, KvCacheEqualsUncachedAcrossTheContextLimit) {
  for (const char* name : {"tiny_a", "tiny_b"}) {
    const std::vector<int> prompt = ref_prompt(name);
    for (float temp : {0.0f, 1.0f}) {
      llm::GenerateOptions opt;
      opt.max_new_tokens = 90;  // 12 + 90 > 64: the last 38 tokens use the crop rule
      opt.sampling.temperature = temp;
      opt.sampling.top_k = temp > 0 ? 40 : 0;
      opt.sampling.top_p = temp > 0 ? 0.95f : 1.0f;
      opt.sampling.seed = 99;
      llm::GenerateStats st;
      std::vector<int> kv = run_gen(name, true, opt, prompt, &st);
      std::vector<int> plain = run_gen(name, false, opt, prompt);
      EXPECT_EQ(kv.size(), 90u);
      EXPECT_EQ(kv, plain) << name << " temperature " << temp;
      EXPECT_EQ(st.reprefills, 12 + 90 - 1 - 64) << "one re-prefill per token fed once the context holds > 64";
      if (temp == 0.0f) {  // and the first 40 are HF's greedy continuation
        std::vector<int> hf = ref_greedy(name);
        EXPECT_EQ(std::vector<int>(kv.begin(), kv.begin() + 40), hf) << name;
      }
    }
  }
}

// After the crop, the next token is the argmax of a fresh forward over the last 64 tokens (the book's rule).
TEST(Generate, CropRuleMatchesFreshForwardOfLastWindow) {
  llm::LoadedModel m = llm::load_model(wt::fixture("tiny_a"));
  llm::UncachedGPT2 ref(m.config, m.params);
  llm::GenerateOptions opt;
  opt.max_new_tokens = 60;
  opt.sampling.temperature = 0.0f;
  const std::vector<int> prompt = ref_prompt("tiny_a");
  std::vector<int> out = run_gen("tiny_a", true, opt, prompt);
  std::vector<int> ctx = prompt;
  ctx.insert(ctx.end(), out.begin(), out.end() - 1);  // everything before the last token: 71 > 64
  ASSERT_GT((int)ctx.size(), 64);
  const float* logits = ref.prefill(ctx.data() + ctx.size() - 64, 64);
  EXPECT_EQ(llm::argmax(logits, m.config.vocab_size), out.back());
}

TEST(Generate, StopAtEosIsNotEmitted) {
  const std::vector<int> prompt = ref_prompt("tiny_a"), greedy = ref_greedy("tiny_a");  // 355, 218, ...
  llm::GenerateOptions opt;
  opt.max_new_tokens = 20;
  opt.sampling.temperature = 0.0f;
  opt.stop_at_eos = true;
  opt.eos_id = greedy[1];
  std::vector<int> streamed;
  llm::LoadedModel m = llm::load_model(wt::fixture("tiny_a"));
  auto model = llm::make_cpu_logits_model(m.config, std::move(m.params), true);
  std::vector<int> out = llm::generate_tokens(*model, prompt, opt, [&](int t) { streamed.push_back(t); });
  EXPECT_EQ(out, std::vector<int>{greedy[0]});
  EXPECT_EQ(streamed, out);
  opt.stop_at_eos = false;  // without the flag the same id is an ordinary token
  EXPECT_EQ(llm::generate_tokens(*model, prompt, opt).size(), 20u);
}

TEST(Generate, BadPromptsAndOptions) {
  llm::LoadedModel m = llm::load_model(wt::fixture("tiny_a"));
  auto model = llm::make_cpu_logits_model(m.config, std::move(m.params), true);
  llm::GenerateOptions opt;
  EXPECT_NE(error_of([&] { llm::generate_tokens(*model, {}, opt); }).find("empty prompt"), std::string::npos);
  std::vector<int> too_long(65, 1);
  EXPECT_NE(error_of([&] { llm::generate_tokens(*model, too_long, opt); })
                .find("prompt has 65 tokens but the model's context is 64 tokens"),
            std::string::npos);
  EXPECT_NE(error_of([&] { llm::generate_tokens(*model, {1, 500}, opt); }).find("id 500, outside"), std::string::npos);
  EXPECT_NE(error_of([&] { llm::generate_tokens(*model, {1, -2}, opt); }).find("id -2"), std::string::npos);
  opt.max_new_tokens = -1;
  EXPECT_NE(error_of([&] { llm::generate_tokens(*model, {1}, opt); }).find("--max-new-tokens"), std::string::npos);
  opt.max_new_tokens = 0;
  EXPECT_TRUE(llm::generate_tokens(*model, {1}, opt).empty());
  opt.sampling.top_p = 0.0f;
  EXPECT_NE(error_of([&] { llm::generate_tokens(*model, {1}, opt); }).find("--top-p"), std::string::npos);
  // A 64-token prompt (exactly the context) is fine.
  opt = llm::GenerateOptions{};
  opt.max_new_tokens = 2;
  EXPECT_EQ(llm::generate_tokens(*model, std::vector<int>(64, 3), opt).size(), 2u);
}

#ifdef GPT2_CPU_BIN
namespace {
std::string gen_cmd(const std::string& args) { return std::string(GPT2_CPU_BIN) + " generate " + args; }
}  // namespace

TEST(GenerateCli, GreedyIdsMatchTransformersWithAndWithoutCache) {
  const std::string ids = join_ids(ref_prompt("tiny_b"));
  std::string want;
  for (int t : ref_greedy("tiny_b")) want += std::to_string(t) + " ";
  for (const char* extra : {"", " --no-kv-cache"}) {
    auto r = wt::run(gen_cmd("--model " + wt::fixture("tiny_b") + " --prompt-ids " + ids +
                             " --ids --no-echo -t 0 -n 40" + extra), "cli_greedy");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, want + "\n") << extra;
    EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
  }
}

TEST(GenerateCli, BadInputExitsTwoWithMessage) {
  const std::string model = " --model " + wt::fixture("tiny_a");
  std::vector<int> long_prompt(65, 7);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {model + " --prompt-ids 1,2 --ids --temperature -1", "--temperature -1 is invalid"},
      {model + " --prompt-ids 1,2 --ids --temperature nan", "--temperature"},
      {model + " --prompt-ids 1,2 --ids --top-k -3", "--top-k -3 is invalid"},
      {model + " --prompt-ids 1,2 --ids --top-p 0", "--top-p 0 is invalid"},
      {model + " --prompt-ids 1,2 --ids --top-p 1.5", "--top-p 1.5 is invalid"},
      {model + " --prompt-ids 1,2 --ids --max-new-tokens -4", "--max-new-tokens -4"},
      {model + " --prompt-ids 1,2 --ids --temperature abc", "temperature"},
      {model + " --prompt-ids 1,x --ids", "'x' is not a token id"},
      {model + " --prompt-ids " + join_ids(long_prompt) + " --ids", "prompt has 65 tokens but the model's context is 64"},
      {model + " --prompt-ids 1,999 --ids", "id 999, outside the model's vocabulary [0, 500)"},
      {" --model /nonexistent/model.safetensors --prompt-ids 1 --ids", "/nonexistent/model.safetensors: cannot open"},
      {" --model " + wt::fixture("tiny_a/ref.json") + " --prompt-ids 1 --ids", "ref.json"},
      {" --prompt-ids 1 --ids", "--model"},
  };
  for (const auto& [args, needle] : cases) {
    auto r = wt::run(gen_cmd(args), "cli_bad");
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_NE(r.err.find("error: "), std::string::npos) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\n" << r.err;
    EXPECT_EQ(r.out, "") << "no partial output for " << args;
  }
}

// Text mode needs the GPT-2 vocabulary files (host/tokenizer.h search order) and a 50257-token model: a random
// tiny one written as an llm.c checkpoint.
TEST(GenerateCli, TextPromptStdinAndEmptyPrompt) {
  try {
    llm::Tokenizer::from_default();
  } catch (const llm::Error& e) {
    GTEST_SKIP() << "GPT-2 vocabulary files not found: " << e.what();
  }
  const std::string dir = wt::temp_dir("cli_text");
  llm::GPT2Config c = llm::preset_config("tiny");
  c.vocab_size = 50257;
  c.padded_vocab_size = 50304;
  llm::GPT2Model model(c);
  model.init_gpt2(5);
  llm::save_checkpoint(dir + "/m.bin", c, model.params());
  auto r = wt::run(gen_cmd("--model " + dir + "/m.bin --prompt 'Hello, I am' -n 8 -t 0.8 --top-k 50 --seed 3"), "cli_text");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Hello, I am", 0), 0u) << r.out;  // prompt echoed, then the new text
  EXPECT_GT(r.out.size(), std::string("Hello, I am\n").size());
  auto s = wt::run("printf 'Hello, I am\\n' | " + gen_cmd("--model " + dir + "/m.bin -n 8 -t 0.8 --top-k 50 --seed 3"),
                   "cli_stdin");
  EXPECT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(s.out, r.out);  // stdin (trailing newline dropped) == --prompt
  auto e = wt::run(gen_cmd("--model " + dir + "/m.bin -n 8 < /dev/null"), "cli_empty");
  EXPECT_EQ(e.code, 2);
  EXPECT_NE(e.err.find("empty prompt"), std::string::npos) << e.err;
}
#endif
