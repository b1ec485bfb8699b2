// generate.h — text generation shared by gpt2_cpu and train_gpt2cu: the `generate` subcommand and its loop.
//
// Why an interface: the loop (context cropping, sampling, EOS, streaming, timing) is the same on every device;
// only "logits of the next token" differs. Each program supplies a LogitsModel factory (the CPU one is in
// cpu/gpt2_infer.h) to add_generate_command.
//
// Context rule (the book's generate(): crop to the last context_size tokens):
//   * the prompt must fit: 1 <= prompt length <= max_seq_len, else llm::Error (exit 2);
//   * while prompt + generated tokens fit in max_seq_len, each new token is one step() (KV cache: O(1) new rows);
//   * once the context exceeds max_seq_len, every further token re-prefills the LAST max_seq_len tokens (positions
//     restart at 0), exactly what the uncached book loop computes, so cached and uncached outputs stay identical.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "host/gpt2_config.h"
#include "host/sampling.h"

namespace CLI {
class App;
}

namespace llm {

class Program;

// A model that yields next-token logits for a growing context.
class LogitsModel {
 public:
  virtual ~LogitsModel() = default;
  virtual const GPT2Config& config() const = 0;
  // Forgets any context, feeds tokens[0..n) at positions 0..n-1 (1 <= n <= max_seq_len) and returns the logits
  // (padded_vocab_size floats, the first vocab_size meaningful) of the last position.
  virtual const float* prefill(const int* tokens, int n) = 0;
  // Appends one token at the next position (requires fewer than max_seq_len tokens fed so far).
  virtual const float* step(int token) = 0;
};

struct GenerateOptions {
  int max_new_tokens = 64;
  SamplingParams sampling;
  bool stop_at_eos = false;
  int eos_id = 50256;  // GPT-2's <|endoftext|>
};

struct GenerateStats {
  int prompt_tokens = 0, new_tokens = 0, reprefills = 0;
  double prefill_seconds = 0.0, decode_seconds = 0.0;  // first prefill; everything after it
};

// Runs the loop; on_token(id) is called for every produced token as soon as it is chosen (the EOS that stops
// generation is neither passed to on_token nor returned). Returns the new tokens. Throws llm::Error for an empty
// prompt, a prompt longer than max_seq_len, token ids outside [0, V), max_new_tokens < 0 or bad sampling params.
std::vector<int> generate_tokens(LogitsModel& model, const std::vector<int>& prompt, const GenerateOptions& opt,
                                 const std::function<void(int)>& on_token = nullptr, GenerateStats* stats = nullptr);

// Builds the device model from loaded weights; kv_cache false selects the uncached path (full forward per token).
using LogitsModelFactory =
    std::function<std::unique_ptr<LogitsModel>(const GPT2Config& config, std::vector<float>&& params, bool kv_cache)>;

// The `generate` verb of a program (host/program.h):
//   --model PATH (llm.c .bin, model.safetensors or HF directory)  --prompt TEXT (else stdin) | --prompt-ids "1,2,3"
//   --max-new-tokens N  --temperature T  --top-k K  --top-p P  --seed S  --stop-at-eos  --eos-id ID
//   --no-kv-cache  --ids (print token ids instead of text)  --no-echo (do not print the prompt first)
// Streams tokens to stdout as they are produced and prints timing + tokens/s to stderr; bad input is an
// llm::Error (the shell's "error: ..." and exit 2). Returns the verb's app: a program adds its own flags there
// (gpt2_cpu: --weights; train_gpt2cu: --precision, --attention), which the factory reads when it is called.
CLI::App& add_generate_command(Program& p, const LogitsModelFactory& factory);

}  // namespace llm
