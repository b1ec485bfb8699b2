// End-to-end tests of build/gpt2_cpu, run as a subprocess on tiny generated shards and the "tiny" preset:
// exact resume, determinism, eval against the model's own forward, and every bad-input case (exit code 2,
// one "error:" line naming the file, no output left behind).
#include <sys/wait.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "cpu/gpt2_model.h"
#include "host/checkpoint.h"
#include "host_test_util.h"

using namespace host_test;

namespace {

// Runs gpt2_cpu with `args` (shell words) inside dir.
Result run(const std::string& dir, const std::string& args) { return run_in_dir(dir, "'" GPT2_CPU_BIN "' " + args); }

// A learnable token stream below the tiny vocab (256): a fixed pseudo-random walk.
std::vector<uint16_t> stream(int n, uint32_t seed) {
  std::vector<uint16_t> t(n);
  uint32_t s = seed;
  for (int i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    t[i] = static_cast<uint16_t>((i * 7 + (s >> 29)) % 200);
  }
  return t;
}

class Gpt2CpuCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = temp_dir();
    write_shard(dir + "/train.bin", stream(4000, 1));
    write_shard(dir + "/val.bin", stream(600, 2));
  }
  std::string dir;
};

const char* kTrain = "train --preset tiny -i train.bin -j val.bin -b 2 -t 16 --threads 2 -s 0 ";

}  // namespace

TEST_F(Gpt2CpuCli, HelpAndUsage) {
  Result r = run(dir, "--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("train"), std::string::npos);
  EXPECT_NE(r.out.find("eval"), std::string::npos);
  r = run(dir, "train --help");
  EXPECT_EQ(r.code, 0);
  for (const char* flag : {"-i,--train-data", "-e,--init", "-d,--total-batch", "--resume", "--lr-schedule",
                           "--weight-decay-all", "--dropout", "--seed", "--threads", "--grad-clip"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  r = run(dir, "eval --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--model"), std::string::npos);
  r = run(dir, "");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  r = run(dir, "train -b notanumber");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
}

TEST_F(Gpt2CpuCli, TrainWritesCheckpointsLogAndProgress) {
  Result r = run(dir, std::string(kTrain) + "-x 4 -n 2 -v 2 -m 2 -o out -l 1e-2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("step     4/4 | loss "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tok/s | ETA"), std::string::npos);
  EXPECT_NE(r.out.find("val loss"), std::string::npos);
  for (const char* f : {"model_00000002.bin", "state_00000002.bin", "DONE_00000002", "model_00000004.bin",
                        "state_00000004.bin", "DONE_00000004", "main.log"})
    EXPECT_TRUE(exists(dir + "/out/" + f)) << f;
  EXPECT_FALSE(exists(dir + "/out/model_00000004.bin.tmp"));
  // the log: val at 0, 2, 4 and four train lines
  std::istringstream log(slurp(dir + "/out/main.log"));
  int train_lines = 0, val_lines = 0;
  for (std::string line; std::getline(log, line);) {
    if (line.find(" train ") != std::string::npos) train_lines++;
    if (line.find(" val ") != std::string::npos) val_lines++;
  }
  EXPECT_EQ(train_lines, 4);
  EXPECT_EQ(val_lines, 3);
  // the final checkpoint is a valid tiny model
  auto info = llm::read_checkpoint_header(dir + "/out/model_00000004.bin");
  EXPECT_EQ(info.config.channels, 32);
}

// 6 steps straight == 3 steps, "crash", resume 3 steps: final weights and optimizer state byte-identical.
// Dropout, gradient accumulation, warmup + cosine and weight decay are all on, so every piece of state matters.
TEST_F(Gpt2CpuCli, ResumeEqualsUninterruptedBitForBit) {
  const std::string flags = std::string(kTrain) + "-d 64 -x 6 -u 2 -q 0.1 -c 0.1 -l 1e-2 --dropout 0.1 -v 0 -n 3 ";
  Result a = run(dir, flags + "-o full");
  ASSERT_EQ(a.code, 0) << a.err;
  // the interrupted run: only what existed after step 3
  ASSERT_EQ(std::system(("mkdir '" + dir + "/cut' && cp '" + dir + "'/full/*_00000003* '" + dir + "/cut/'").c_str()), 0);
  Result b = run(dir, flags + "-o cut --resume");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(b.out.find("resumed from cut at step 3"), std::string::npos) << b.out;
  EXPECT_EQ(b.out.find("step     3/6"), std::string::npos) << "step 3 must not be retrained";
  auto full_model = read_bytes(dir + "/full/model_00000006.bin");
  auto cut_model = read_bytes(dir + "/cut/model_00000006.bin");
  ASSERT_GT(full_model.size(), 1024u);
  EXPECT_TRUE(full_model == cut_model) << "resumed weights differ from uninterrupted weights";
  EXPECT_TRUE(read_bytes(dir + "/full/state_00000006.bin") == read_bytes(dir + "/cut/state_00000006.bin"));
  // and training did move the weights
  EXPECT_FALSE(full_model == read_bytes(dir + "/full/model_00000003.bin"));

  // a resume with different optimizer settings is refused, naming the state file
  ASSERT_EQ(std::system(("rm '" + dir + "'/cut/*_00000006*").c_str()), 0);
  Result c = run(dir, flags + "-o cut -y 1 --seed 7");
  EXPECT_EQ(c.code, 2);
  EXPECT_NE(c.err.find("cut/state_00000003.bin: was written with different settings"), std::string::npos) << c.err;
  EXPECT_FALSE(exists(dir + "/cut/model_00000006.bin"));

  // a damaged state file is reported, not trusted
  auto st = read_bytes(dir + "/cut/state_00000003.bin");
  st.resize(st.size() - 4);
  write_bytes(dir + "/cut/state_00000003.bin", st);
  Result d = run(dir, flags + "-o cut -y 1");
  EXPECT_EQ(d.code, 2);
  EXPECT_NE(d.err.find("cut/state_00000003.bin: file size"), std::string::npos) << d.err;
}

TEST_F(Gpt2CpuCli, SameSeedSameThreadsIsDeterministic) {
  const std::string flags = std::string(kTrain) + "-x 3 -l 1e-2 --dropout 0.1 -v 0 ";
  ASSERT_EQ(run(dir, flags + "-o r1").code, 0);
  ASSERT_EQ(run(dir, flags + "-o r2").code, 0);
  EXPECT_TRUE(read_bytes(dir + "/r1/model_00000003.bin") == read_bytes(dir + "/r2/model_00000003.bin"));
  ASSERT_EQ(run(dir, flags + "-o r3 --seed 43").code, 0);
  EXPECT_FALSE(read_bytes(dir + "/r1/model_00000003.bin") == read_bytes(dir + "/r3/model_00000003.bin"));
}

// eval's val_loss must be the mean of the model's forward loss over the first m consecutive B×T windows.
TEST_F(Gpt2CpuCli, EvalMatchesModelForward) {
  llm::GPT2Config cfg = llm::preset_config("tiny");
  llm::GPT2Model model(cfg);
  model.init_gpt2(123);
  llm::save_checkpoint(dir + "/m.bin", cfg, model.params());
  const auto tokens = stream(600, 2);
  const int B = 2, T = 8;
  for (int m : {3, -1}) {
    const int windows = m > 0 ? m : (600 - 1) / (B * T);
    double sum = 0;
    std::vector<int> x(B * T), y(B * T);
    for (int w = 0; w < windows; w++) {
      for (int i = 0; i < B * T; i++) {
        x[i] = tokens[w * B * T + i];
        y[i] = tokens[w * B * T + i + 1];
      }
      sum += model.forward(x.data(), y.data(), B, T);
    }
    const double want = sum / windows;
    Result r = run(dir, "eval --model m.bin --data val.bin -b 2 -t 8 --threads 2 -m " + std::to_string(m));
    ASSERT_EQ(r.code, 0) << r.err;
    double got = -1, ppl = -1;
    ASSERT_EQ(std::sscanf(r.out.c_str(), "val_loss %lf\nperplexity %lf", &got, &ppl), 2) << r.out;
    // per-window losses are bit-identical for any thread count (ModelDeterminism) and both sides sum them in double
    // in window order; eval rounds the mean to float (½ ulp at 5.5 = 2.4e-7) and prints 6 decimals (±5e-7): 7.4e-7.
    // ppl = exp(float loss): relative 2.4e-7 from that rounding, + 5e-7 printed.
    EXPECT_NEAR(got, want, 2e-6) << "m=" << m;
    EXPECT_NEAR(ppl, std::exp(want), 2e-6 * std::exp(want) + 2e-6);
    EXPECT_GT(want, 4.0);  // an untrained model over 256 tokens is near ln(256) = 5.5
  }
}

// Each bad input: exit code 2, exactly one "error: ..." line naming the file and the problem, no output dir.
TEST_F(Gpt2CpuCli, BadInputsExitTwoWithOneClearMessage) {
  // a valid tiny checkpoint to corrupt
  llm::GPT2Config cfg = llm::preset_config("tiny");
  llm::GPT2Model model(cfg);
  model.init_gpt2(1);
  llm::save_checkpoint(dir + "/good.bin", cfg, model.params());
  const auto good = read_bytes(dir + "/good.bin");
  auto corrupt = [&](const std::string& name, std::vector<uint8_t> b) { write_bytes(dir + "/" + name, b); };
  auto b = good;
  set_i32(b, 0, 12345);
  corrupt("magic.bin", b);
  b = good;
  set_i32(b, 1, 2);
  corrupt("version.bin", b);
  b = good;
  b.resize(b.size() - 100);
  corrupt("truncated.bin", b);
  b = good;
  b.insert(b.end(), 64, 0);
  corrupt("oversized.bin", b);
  b = good;
  set_i32(b, 6, 64);  // C=64: the header now describes a larger model than the file holds
  corrupt("header.bin", b);
  auto tokens = stream(400, 3);
  tokens[250] = 256;  // == vocab of the tiny model
  write_shard(dir + "/badtok.bin", tokens);
  write_shard(dir + "/small.bin", stream(40, 4));

  struct Case {
    std::string args, file, problem;
  };
  const std::string t = "train -i train.bin -j val.bin -b 2 -t 16 -x 2 -o out ";
  std::vector<Case> cases = {
      {t + "-e magic.bin", "magic.bin", "bad magic"},
      {t + "-e version.bin", "version.bin", "version 2"},
      {t + "-e truncated.bin", "truncated.bin", "truncated"},
      {t + "-e oversized.bin", "oversized.bin", "oversized"},
      {t + "-e header.bin", "header.bin", "disagrees with the header"},
      {t + "-e missing.bin", "missing.bin", "cannot open"},
      {t + "--preset tiny -i badtok.bin", "badtok.bin", "token id 256 at token 250"},
      {t + "--preset tiny -j badtok.bin", "badtok.bin", ">= the model's vocab size 256"},
      {t + "--preset tiny -t 128", "tiny", "exceeds the context length 64"},
      {t + "--preset tiny -i small.bin -b 4 -t 16", "small.bin", "40 tokens, fewer than the 65"},
      {t + "--preset tiny -d 100", "-d/--total-batch", "not divisible by B*T"},
      {t + "--preset tiny -i nothere.bin", "nothere.bin", "cannot open"},
      {t + "--preset tiny -i 'nothere_*.bin'", "nothere_*.bin", "no files match"},
      {t + "--preset tiny -j noval.bin", "noval.bin", "cannot open"},
      {t + "--preset nosuch", "nosuch", "unknown model preset"},
      {t + "--preset tiny -l -1", "-l/--lr", "(got -1)"},
      {"eval --model magic.bin --data val.bin", "magic.bin", "bad magic"},
      {"eval --model good.bin --data badtok.bin", "badtok.bin", "token id 256"},
      {"eval --model good.bin --data val.bin -t 65", "good.bin", "exceeds the context length 64"},
      {"eval --model good.bin --data small.bin -b 4 -t 16", "small.bin", "fewer than the 65"},
      {"eval --model nomodel.bin --data val.bin", "nomodel.bin", "cannot open"},
  };
  for (const Case& c : cases) {
    Result r = run(dir, c.args);
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << c.args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.file), std::string::npos) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.problem), std::string::npos) << c.args << ": " << r.err;
    EXPECT_FALSE(exists(dir + "/out")) << c.args << " left an output directory";
    EXPECT_EQ(r.out.find("step "), std::string::npos) << c.args << " started training";
  }
}
