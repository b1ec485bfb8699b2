// The program shell (host/program.h) of both programs, run as subprocesses: `--help` lists every verb with its
// one-line description, every verb's --help and usage line name the program, and a flag CLI11 rejects, a bad
// value and a missing file all end in one "error: ..." line and exit 2 — the same on gpt2_cpu and on
// train_gpt2cu (here its CUDA-on-CPU build, train_gpt2cu_cpu).
#include <sstream>

#include "host_test_util.h"

using namespace host_test;

namespace {

struct Prog {
  const char* bin;   // path of the binary
  const char* name;  // the name it gives itself in help and usage lines
};
const Prog kPrograms[] = {{GPT2_CPU_BIN, "gpt2_cpu"}, {TRAIN_GPT2CU_BIN, "train_gpt2cu"}};
const char* kVerbs[] = {"train",     "eval",     "generate", "export", "finetune-classify",
                         "classify",  "finetune-instruct", "hellaswag"};

Result run(const Prog& p, const std::string& args) {
  static const std::string dir = temp_dir();
  return run_in_dir(dir, std::string("'") + p.bin + "' " + args);
}

// The line of `text` that starts with `prefix` ("" when none).
std::string line_starting(const std::string& text, const std::string& prefix) {
  std::istringstream is(text);
  for (std::string line; std::getline(is, line);)
    if (line.rfind(prefix, 0) == 0) return line;
  return "";
}

}  // namespace

TEST(ProgramShell, HelpListsEveryVerbWithADescription) {
  for (const Prog& p : kPrograms) {
    const Result r = run(p, "--help");
    EXPECT_EQ(r.code, 0) << p.name;
    EXPECT_EQ(r.out.rfind(std::string(p.name) + " — ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find(std::string("Usage: ") + p.name + " [OPTIONS] SUBCOMMAND"), std::string::npos) << r.out;
    for (const char* verb : kVerbs) {
      // "  <verb>   <description>": the verb, then at least one space and a description of a few words
      const std::string line = line_starting(r.out, std::string("  ") + verb + " ");
      ASSERT_FALSE(line.empty()) << p.name << " --help lacks " << verb << ":\n" << r.out;
      std::istringstream words(line.substr(2 + std::string(verb).size()));
      int n = 0;
      for (std::string w; words >> w;) n++;
      EXPECT_GE(n, 5) << line;
    }
  }
}

TEST(ProgramShell, EveryVerbsHelpAndUsageNameTheProgram) {
  for (const Prog& p : kPrograms)
    for (const char* verb : kVerbs) {
      const Result r = run(p, std::string(verb) + " --help");
      EXPECT_EQ(r.code, 0) << p.name << " " << verb;
      EXPECT_NE(r.out.find(std::string("Usage: ") + p.name + " " + verb + " [OPTIONS]"), std::string::npos)
          << p.name << " " << verb << ":\n" << r.out;
      EXPECT_TRUE(r.err.empty()) << r.err;
    }
}

TEST(ProgramShell, ParseErrorsAreOneErrorLineNamingTheVerbsHelp) {
  for (const Prog& p : kPrograms) {
    for (const char* verb : kVerbs) {
      const Result r = run(p, std::string(verb) + " --no-such-flag");
      EXPECT_EQ(r.code, 2) << p.name << " " << verb;
      EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
      EXPECT_NE(r.err.find(std::string("(run '") + p.name + " " + verb + " --help' for the list of options)"),
                std::string::npos)
          << r.err;
      EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
      EXPECT_TRUE(r.out.empty()) << r.out;
    }
    Result r = run(p, "");  // no verb
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err, std::string("error: A subcommand is required (run '") + p.name +
                         " --help' for the list of options)\n");
    r = run(p, "no-such-verb");
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  }
}

TEST(ProgramShell, RunErrorsAreOneErrorLineAndExit2) {
  for (const Prog& p : kPrograms)
    for (const char* cmd : {"eval --model missing.bin", "generate --model missing.bin --prompt-ids 1 --ids",
                            "export --model missing.bin --out out", "classify --model missing.bin --text hi"}) {
      const Result r = run(p, cmd);
      EXPECT_EQ(r.code, 2) << p.name << " " << cmd;
      const std::string last = r.err.substr(r.err.rfind("error: ") == std::string::npos ? 0 : r.err.rfind("error: "));
      EXPECT_EQ(last.rfind("error: ", 0), 0u) << r.err;
      EXPECT_NE(last.find("missing.bin"), std::string::npos) << r.err;
      EXPECT_TRUE(r.out.empty()) << r.out;
    }
}
