// fuzz_cli — libFuzzer target for the command line of train and eval (host/cli.*): CLI11 parsing with our
// options and validators (strict 64-bit seed, thread bounds, ...), validate_*_options, and for train the
// resume-settings text (resume_settings_text -> apply_resume_settings must round-trip, as a resume relies on).
// Input: byte 0 picks the subcommand (even: train, odd: eval), the rest is argv[1..] separated by NUL bytes.
// Every outcome must be a parse result (exit code) or llm::Error; nothing else may escape.
// (generate/export/finetune-* run whole programs on the paths they are given, so they are not called here;
// their option parsing is CLI11 with the same helpers.)
// FUZZ_WRITE_SEEDS=<dir> writes README-style command lines and exits.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "host/cli.h"
#include "host/error.h"

using namespace std::string_view_literals;  // the literals hold NULs (argument separators)
static const std::string_view kTrain[] = {
    "--preset\0d6\0-b\0" "8\0-t\0" "64\0-x\0" "200\0-l\0" "1e-3\0-u\0" "20\0-o\0out/d6"sv,
    "--resume\0-o\0out/d6\0-x\0" "400"sv,
    "-i\0data/x_train.bin\0-j\0data/x_val.bin\0-e\0model.bin\0-d\0" "1024\0-k\0linear\0-q\0" "0.1\0-c\0" "0.1"sv,
    "--seed\0" "18446744073709551615\0--threads\0" "1024\0--dropout\0" "0.1\0--grad-clip\0" "0\0-z\0" "1"sv,
    "-v\0" "0\0-m\0-1\0-s\0" "0\0-g\0" "16\0--temperature\0" "0\0-n\0" "10\0--checkpoint-bf16\0--overwrite"sv,
    "--max-bad-steps\0" "3\0--collective-timeout\0" "60\0--rendezvous-timeout\0" "5\0--weight-decay-all"sv,
};
static const std::string_view kEval[] = {
    "--model\0out/d6/model_00000200.bin\0--data\0data/tinyshakespeare/tiny_shakespeare_val.bin"sv,
    "--model\0m.bin\0-b\0" "2\0-t\0" "32\0-m\0" "4\0--threads\0" "2\0--allow-nonfinite"sv,
};

template <size_t N>
static void write_list(const char* dir, const std::string_view (&list)[N], char mode, int* k) {
  for (std::string_view s : list) {
    std::ofstream out(std::string(dir) + "/seed_" + std::to_string((*k)++), std::ios::binary);
    out.put(mode);
    out.write(s.data(), static_cast<std::streamsize>(s.size()));
  }
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("FUZZ_WRITE_SEEDS")) {
    int k = 0;
    write_list(dir, kTrain, 0, &k);
    write_list(dir, kEval, 1, &k);
    std::exit(0);
  }
  // parse_command_line prints help and errors; keep the fuzzer's log small (sanitizers write to fd 2 directly)
  std::cout.rdbuf(nullptr);
  std::cerr.rdbuf(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::vector<std::string> args{data[0] & 1 ? "eval" : "train"};
  std::string cur;
  for (size_t i = 1; i < size; i++) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += static_cast<char>(data[i]);
    }
  }
  if (!cur.empty()) args.push_back(cur);
  if (args.size() > 64) return 0;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int argc = static_cast<int>(args.size());
  try {
    CLI::App app;
    if (data[0] & 1) {
      llm::EvalOptions o;
      llm::add_eval_options(app, o);
      if (llm::parse_command_line(app, argc, argv.data()) != -1) return 0;
      llm::validate_eval_options(o);
    } else {
      llm::TrainOptions o;
      llm::add_train_options(app, o);
      if (llm::parse_command_line(app, argc, argv.data()) != -1) return 0;
      llm::validate_train_options(o);
      // the settings a resume inherits: written, read back into defaults, written again -> identical
      const std::string text = llm::resume_settings_text(o);
      llm::TrainOptions back;
      llm::apply_resume_settings(&back, text, "settings");
      if (llm::resume_settings_text(back) != text) __builtin_trap();
    }
  } catch (const llm::Error&) {
  }
  return 0;
}
