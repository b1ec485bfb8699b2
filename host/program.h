// program.h — the program shell shared by gpt2_cpu and train_gpt2cu: one CLI11 app with one subcommand per verb,
// one parse, one error reporter.
//
// Why one shell: both programs offer the same verbs with the same flags; each verb's flags and driver live once
// in host/ (add_*_command below, host/generate.h, host/hf_gpt2.h, the fine-tuning driver), and a program file only
// wires its backend (CPU reference or device) into them. `<program> --help` lists every verb with one line, and
// every usage line reads "Usage: <program> <verb> [OPTIONS]".
//
// Adding a verb to both programs (a few lines in each program file):
//   MyOptions opts;                                     // must outlive Program::main
//   CLI::App& cmd = program.add("verb", "one line for --help", [&] { return run_verb(opts, backend...); });
//   cmd.add_option("--flag", opts.flag, "...");         // or a shared add_verb_options(cmd, opts) in host/
//   program.command("train")->add_flag(...)             // a flag for an existing verb
//
// Exit codes and messages (the same for every verb):
//   --help: help on stdout, 0.   A flag CLI11 rejects: "error: <CLI11's message> (run with --help ...)", 2.
//   llm::Error thrown by a verb: "error: <message>" on stderr, 2 (kExitBadInput).
//   std::bad_alloc: "error: out of memory (...)", 1.
//   With several ranks (set_rank_env), each line names the rank and the other ranks are stopped (MPI_Abort).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "host/rank_env.h"

namespace llm {

struct TrainOptions;
struct EvalOptions;

class Program {
 public:
  // name: "gpt2_cpu" / "train_gpt2cu" (help titles and usage lines); description: the first line of --help.
  Program(const std::string& name, const std::string& description);

  const std::string& name() const { return name_; }
  // Adds a verb; run is called after a successful parse when the verb was chosen and returns the exit code.
  // It may throw llm::Error (bad input) or std::bad_alloc. Returns the verb's app, for its flags.
  CLI::App& add(const std::string& verb, const std::string& description, std::function<int()> run);
  // The app of a verb added before (nullptr if none), e.g. to give a backend's flag to a shared verb.
  CLI::App* command(const std::string& verb);
  // From now on error lines name this rank of a data-parallel run (a verb calls it once it knows).
  void set_rank_env(const RankEnv& env) { env_ = env; }
  // Called with the exit code after an error line (programs that may run under mpirun pass
  // llm::abort_other_ranks, host/comm_mpi.h, which lives outside llm_host).
  void set_abort_hook(std::function<void(int)> abort_others) { abort_others_ = std::move(abort_others); }

  // Parses argv (argv[0] is the program path) and runs the chosen verb. Returns the process exit code.
  int main(int argc, char** argv);

 private:
  int report(const char* what, int exit_code);

  std::string name_;
  CLI::App app_;
  std::vector<std::pair<CLI::App*, std::function<int()>>> verbs_;
  RankEnv env_;  // a single process until a verb says otherwise
  std::function<void(int)> abort_others_;
};

// The verbs both programs share, with their one-line descriptions. run is the program's driver call.
CLI::App& add_train_command(Program& p, TrainOptions& o, std::function<int()> run);
CLI::App& add_eval_command(Program& p, EvalOptions& o, std::function<int()> run);

}  // namespace llm
