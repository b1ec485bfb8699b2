// Shared training CLI: llm.c short aliases map to the right fields, every number is validated, and parse
// errors give exit code 2.
#include "host/cli.h"
#include "host/error.h"
#include "host_test_util.h"

namespace {

// Parses `args` (without argv[0]) into a fresh TrainOptions; returns parse_command_line's code.
int parse(std::vector<std::string> args, llm::TrainOptions* o) {
  CLI::App app("test");
  llm::add_train_options(app, *o);
  std::vector<char*> argv;
  static std::string name = "prog";
  argv.push_back(name.data());
  for (auto& a : args) argv.push_back(a.data());
  return llm::parse_command_line(app, static_cast<int>(argv.size()), argv.data());
}

llm::TrainOptions parsed(std::vector<std::string> args) {
  llm::TrainOptions o;
  EXPECT_EQ(parse(std::move(args), &o), -1);
  return o;
}

}  // namespace

TEST(HostCli, LlmcShortAliases) {
  auto o = parsed({"-i", "tr*.bin", "-j", "va.bin", "-e", "m.bin", "-o", "out", "-b", "8", "-t", "128", "-d", "2048",
                   "-x", "100", "-k", "linear", "-l", "0.001", "-u", "10", "-q", "0.1", "-c", "0.05", "-v", "7", "-m",
                   "3", "-s", "9", "-g", "32", "-n", "25", "-y", "1"});
  EXPECT_EQ(o.train_data, "tr*.bin");
  EXPECT_EQ(o.val_data, "va.bin");
  EXPECT_EQ(o.init, "m.bin");
  EXPECT_EQ(o.output_dir, "out");
  EXPECT_EQ(o.batch_size, 8);
  EXPECT_EQ(o.seq_len, 128);
  EXPECT_EQ(o.total_batch, 2048);
  EXPECT_EQ(o.max_steps, 100);
  EXPECT_EQ(o.lr_schedule, "linear");
  EXPECT_FLOAT_EQ(o.lr, 0.001f);
  EXPECT_EQ(o.warmup, 10);
  EXPECT_FLOAT_EQ(o.min_lr_frac, 0.1f);
  EXPECT_FLOAT_EQ(o.weight_decay, 0.05f);
  EXPECT_EQ(o.val_every, 7);
  EXPECT_EQ(o.val_max_batches, 3);
  EXPECT_EQ(o.sample_every, 9);
  EXPECT_EQ(o.gen_tokens, 32);
  EXPECT_EQ(o.checkpoint_every, 25);
  EXPECT_EQ(o.resume, 1);
  EXPECT_NO_THROW(llm::validate_train_options(o));
}

TEST(HostCli, LongNames) {
  auto o = parsed({"--preset", "tiny", "--weight-decay-all", "--lr-schedule", "constant", "--min-lr-frac", "0.5",
                   "--grad-clip", "0", "--dropout", "0.1", "--seed", "7", "--threads", "2", "--temperature", "0"});
  EXPECT_EQ(o.preset, "tiny");
  EXPECT_TRUE(o.weight_decay_all);
  EXPECT_EQ(o.lr_schedule, "constant");
  EXPECT_FLOAT_EQ(o.min_lr_frac, 0.5f);
  EXPECT_EQ(o.grad_clip, 0.0f);
  EXPECT_FLOAT_EQ(o.dropout, 0.1f);
  EXPECT_EQ(o.seed, 7u);
  EXPECT_EQ(o.threads, 2);
  EXPECT_EQ(o.temperature, 0.0f);
  EXPECT_NO_THROW(llm::validate_train_options(o));
}

TEST(HostCli, ParseErrorsExitTwo) {
  llm::TrainOptions o;
  testing::internal::CaptureStderr();
  EXPECT_EQ(parse({"-b", "abc"}, &o), 2);
  EXPECT_EQ(parse({"--no-such-flag", "1"}, &o), 2);
  EXPECT_EQ(parse({"-t", "1.5"}, &o), 2);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("error: "), std::string::npos);
  testing::internal::CaptureStdout();
  EXPECT_EQ(parse({"--help"}, &o), 0);
  std::string help = testing::internal::GetCapturedStdout();
  EXPECT_NE(help.find("--batch-size"), std::string::npos);
}

TEST(HostCli, EveryNumberIsValidated) {
  struct Case {
    std::vector<std::string> args;
    std::string flag;
  };
  std::vector<Case> cases = {
      {{"-b", "0"}, "-b/--batch-size"},         {{"-b", "-3"}, "-b/--batch-size"},
      {{"-t", "0"}, "-t/--seq-len"},            {{"-b", "4", "-t", "64", "-d", "1000"}, "not divisible by B*T"},
      {{"-d", "0"}, "-d/--total-batch"},        {{"-x", "0"}, "-x/--max-steps"},
      {{"-x", "-2"}, "-x/--max-steps"},         {{"-k", "wsd"}, "-k/--lr-schedule"},
      {{"-l", "0"}, "-l/--lr"},                 {{"-l", "nan"}, "-l/--lr"},
      {{"-u", "-1"}, "-u/--warmup"},            {{"-q", "1.5"}, "-q/--min-lr-frac"},
      {{"-c", "-0.1"}, "-c/--weight-decay"},    {{"--beta1", "1"}, "--beta1"},
      {{"--beta2", "-0.1"}, "--beta2"},         {{"--adam-eps", "0"}, "--adam-eps"},
      {{"--grad-clip", "-1"}, "--grad-clip"},   {{"--dropout", "1"}, "--dropout"},
      {{"--dropout", "-0.5"}, "--dropout"},     {{"--threads", "-1"}, "--threads"},
      {{"-v", "-1"}, "-v/--val-every"},         {{"-m", "0"}, "-m/--val-max-batches"},
      {{"-s", "-5"}, "-s/--sample-every"},      {{"-g", "-1"}, "-g/--gen-tokens"},
      {{"--temperature", "-1"}, "--temperature"}, {{"-n", "-1"}, "-n/--checkpoint-every"},
      {{"-y", "2"}, "-y must be 0 or 1"},             {{"-y", "1"}, "needs -o"},
      {{"-e", "x.bin", "--preset", "tiny"}, "mutually exclusive"},
  };
  for (auto& c : cases) {
    llm::TrainOptions o;
    ASSERT_EQ(parse(c.args, &o), -1) << c.flag;
    EXPECT_LLM_ERROR(llm::validate_train_options(o), c.flag);
  }
  // -d that divides is fine, and -1 means B*T
  EXPECT_NO_THROW(llm::validate_train_options(parsed({"-b", "4", "-t", "64", "-d", "1024"})));
  EXPECT_NO_THROW(llm::validate_train_options(parsed({"-m", "-1", "-x", "-1"})));
}

TEST(HostCli, ResumeFlagAndRepeatedFlags) {
  auto o = parsed({"--resume", "-o", "out"});
  EXPECT_EQ(o.resume, 1);
  o = parsed({"-b", "4", "-b", "16"});  // like a shell script overriding a default: the last one wins
  EXPECT_EQ(o.batch_size, 16);
}

TEST(HostCli, EvalOptions) {
  llm::EvalOptions o;
  CLI::App app("eval");
  llm::add_eval_options(app, o);
  std::vector<std::string> args = {"prog", "--model", "m.bin", "--data", "d.bin", "-b", "2", "-t", "16", "-m", "5"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ASSERT_EQ(llm::parse_command_line(app, static_cast<int>(argv.size()), argv.data()), -1);
  EXPECT_EQ(o.model, "m.bin");
  EXPECT_EQ(o.data, "d.bin");
  EXPECT_EQ(o.batch_size, 2);
  EXPECT_EQ(o.seq_len, 16);
  EXPECT_EQ(o.max_batches, 5);
  EXPECT_NO_THROW(llm::validate_eval_options(o));
  o.max_batches = 0;
  EXPECT_LLM_ERROR(llm::validate_eval_options(o), "-m/--max-batches");
}

// Saved settings (state files, --resume) are parsed strictly: a value out of its field's range or not finite is an
// error naming the file, never a wrap (4294967300 -> 4 in an int) or an infinite learning rate. Round trip exact.
TEST(HostCli, SavedSettingsParsedStrictly) {
  llm::TrainOptions a;
  a.batch_size = 12;
  a.lr = 3e-4f;
  a.seed = 18446744073709551615ull;
  a.weight_decay_all = true;
  llm::TrainOptions b;
  llm::apply_resume_settings(&b, llm::resume_settings_text(a), "state.bin");
  EXPECT_EQ(b.batch_size, 12);
  EXPECT_EQ(b.lr, 3e-4f);
  EXPECT_EQ(b.seed, 18446744073709551615ull);
  EXPECT_TRUE(b.weight_decay_all);
  for (const char* bad : {"--batch-size=4294967300", "--batch-size=12x", "--lr=1e300", "--lr=inf", "--lr=nan",
                          "--seed=-1", "--seed=18446744073709551616", "--weight-decay-all=2", "--warmup="}) {
    llm::TrainOptions o;
    try {
      llm::apply_resume_settings(&o, std::string(bad) + "\n", "state.bin");
      ADD_FAILURE() << bad << " was accepted";
    } catch (const llm::Error& e) {
      EXPECT_NE(std::string(e.what()).find("state.bin: malformed saved setting"), std::string::npos) << e.what();
    }
  }
}
