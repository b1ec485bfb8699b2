#include "host/program.h"

#include <cstdio>
#include <new>

#include "host/cli.h"
#include "host/error.h"

namespace llm {

Program::Program(const std::string& name, const std::string& description)
    : name_(name), app_(name + " — " + description, name) {
  app_.require_subcommand(1);
}

CLI::App& Program::add(const std::string& verb, const std::string& description, std::function<int()> run) {
  CLI::App* sub = app_.add_subcommand(verb, description);
  verbs_.emplace_back(sub, std::move(run));
  return *sub;
}

CLI::App* Program::command(const std::string& verb) {
  for (auto& v : verbs_)
    if (v.first->get_name() == verb) return v.first;
  return nullptr;
}

int Program::report(const char* what, int exit_code) {
  std::fflush(stdout);
  if (env_.world > 1)
    std::fprintf(stderr, "error: %s (rank %d of %d)\n", what, env_.rank, env_.world);
  else
    std::fprintf(stderr, "error: %s\n", what);
  std::fflush(stderr);
  if (abort_others_) abort_others_(exit_code);
  return exit_code;
}

int Program::main(int argc, char** argv) {
  const int code = parse_command_line(app_, argc, argv);
  if (code >= 0) return code;
  try {
    for (auto& v : verbs_)
      if (v.first->parsed()) return v.second();
    fail("no subcommand given");  // (require_subcommand makes this unreachable)
  } catch (const Error& e) {
    return report(e.what(), kExitBadInput);
  } catch (const std::bad_alloc&) {
    return report("out of memory (try a smaller model, -b or -t)", 1);
  }
}

CLI::App& add_train_command(Program& p, TrainOptions& o, std::function<int()> run) {
  CLI::App& cmd = p.add("train", "train GPT-2 on llm.c token shards (random init, or -e weights), with val loss, "
                        "samples, checkpoints and exact --resume", std::move(run));
  add_train_options(cmd, o);
  return cmd;
}

CLI::App& add_eval_command(Program& p, EvalOptions& o, std::function<int()> run) {
  CLI::App& cmd = p.add("eval", "val loss + perplexity of a model on token shards", std::move(run));
  add_eval_options(cmd, o);
  return cmd;
}

}  // namespace llm
