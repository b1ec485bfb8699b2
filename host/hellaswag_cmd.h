// hellaswag_cmd.h — the `hellaswag` subcommand of gpt2_cpu and train_gpt2cu (host/hellaswag.h does the work).
//
//   <program> hellaswag --model M --data hellaswag_val.jsonl [-b ITEMS] [--max-items N] [--print-items]
//
// Loads the model (llm.c .bin, model.safetensors or a HF directory), reads and tokenizes the items, sizes one
// forward as B = 4·ITEMS rows x T positions (T: the longest row, at most the model's context; longer rows lose
// context tokens from the left), asks the program for its model at that shape, scores, and prints as the last
// line of stdout "hellaswag: items N | acc A | acc_norm B". Bad input: llm::Error (the shell exits 2).
#pragma once
#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "host/hellaswag.h"
#include "host/hf_gpt2.h"

namespace llm {

class Program;

struct HellaSwagOptions {
  std::string model;         // --model
  std::string data;          // --data JSONL
  int batch_items = 4;       // -b items per forward (4 rows each)
  int max_items = -1;        // --max-items: the first N items; -1 = all
  int threads = 0;           // --threads (OpenMP; the CPU programs)
  bool print_items = false;  // --print-items: one "item ..." line per item before the summary
};

void add_hellaswag_options(CLI::App& app, HellaSwagOptions& o);

// The program's model for a batch of B rows x T positions, holding m's weights (fp32 as loaded).
using MakeTokenLossModel = std::function<std::unique_ptr<TokenLossModel>(const LoadedModel& m, int B, int T)>;

// The evaluation after parsing; returns 0. Throws llm::Error on bad input.
int run_hellaswag(const HellaSwagOptions& o, const MakeTokenLossModel& make_model);

// The `hellaswag` verb of a program (host/program.h); a program adds its own flags (e.g. --precision) on the
// returned app, which make_model reads when it is called.
CLI::App& add_hellaswag_command(Program& p, const MakeTokenLossModel& make_model);

}  // namespace llm
