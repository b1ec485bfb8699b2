// test_attention_path.cpp — `--attention auto|flash|cudnn|portable` (gpu/attention_path.h) and the flag on every
// train_gpt2cu subcommand that runs attention.
//   AttentionPath.*      the pure selection: parsing, auto's choice over every combination of the facts that decide
//                        it (build, device, precision, dropout, head size), and each refusal with its reason;
//   AttentionFlag.*      train_gpt2cu_cpu as a subprocess (when TRAIN_GPT2CU_BIN is given): the chosen path is
//                        printed at startup (train: the banner on stdout; eval / generate / fine-tuning: stderr,
//                        so their stdout stays gpt2_cpu's), and every impossible choice exits 2 with one
//                        "error: --attention ..." line and no output — never a silent switch.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gpu/attention_path.h"
#include "host/checkpoint.h"
#include "host/gpt2_config.h"
#include "host_test_util.h"

using gpu::AttentionFacts;
using gpu::AttentionPath;

namespace {

// A GPU build with everything in it, bf16, no dropout, head size 64: the facts auto likes best.
AttentionFacts all_there() {
  AttentionFacts f;
  f.bf16 = true;
  f.dropout = 0.0f;
  f.head_size = 64;
  f.cudnn_built = true;
  f.real_gpu = true;
  f.flash_built = true;
  f.flash_supported = true;
  return f;
}

std::string why(AttentionPath p, const AttentionFacts& f) { return gpu::attention_unavailable(p, f); }

}  // namespace

TEST(AttentionPath, ParsesTheFourNamesAndRefusesOthers) {
  for (AttentionPath p : {AttentionPath::kAuto, AttentionPath::kPortable, AttentionPath::kFlash, AttentionPath::kCudnn})
    EXPECT_EQ(gpu::parse_attention_path(gpu::attention_path_name(p)), p);
  for (const char* bad : {"", "Flash", "cuDNN", "naive", "auto "})
    EXPECT_LLM_ERROR(gpu::parse_attention_path(bad), "--attention must be auto, flash, cudnn or portable",
                     std::string("'") + bad + "'");
}

// auto = cudnn when it can run, else flash when it can run, else portable — over all combinations of the facts
// (head sizes: 64 both fast paths take, 96 only cuDNN takes, 12 neither).
TEST(AttentionPath, AutoPrefersCudnnThenFlashThenPortable) {
  int cudnn = 0, flash = 0, portable = 0;
  for (int bits = 0; bits < 64; bits++)
    for (int hs : {64, 96, 12}) {
      AttentionFacts f;
      f.bf16 = bits & 1;
      f.dropout = (bits & 2) ? 0.1f : 0.0f;
      f.cudnn_built = bits & 4;
      f.real_gpu = bits & 8;
      f.flash_built = bits & 16;
      f.flash_supported = (bits & 32) && f.flash_built && f.bf16 && (hs == 64 || hs == 128);
      f.head_size = hs;
      const bool cudnn_ok = f.cudnn_built && f.real_gpu && f.bf16 && f.dropout == 0.0f && hs % 8 == 0 && hs <= 128;
      const bool flash_ok = f.flash_built && f.bf16 && f.flash_supported;
      const AttentionPath want =
          cudnn_ok ? AttentionPath::kCudnn : flash_ok ? AttentionPath::kFlash : AttentionPath::kPortable;
      const AttentionPath got = gpu::resolve_attention(AttentionPath::kAuto, f);
      EXPECT_EQ(got, want) << "bits " << bits << " hs " << hs;
      EXPECT_NE(got, AttentionPath::kAuto);
      (got == AttentionPath::kCudnn ? cudnn : got == AttentionPath::kFlash ? flash : portable)++;
      // whatever auto picks can also be asked for by name
      EXPECT_EQ(gpu::resolve_attention(got, f), got);
    }
  EXPECT_GT(cudnn, 0);
  EXPECT_GT(flash, 0);
  EXPECT_GT(portable, 0);
}

TEST(AttentionPath, AutoInTheTypicalRuns) {
  AttentionFacts f = all_there();
  EXPECT_EQ(gpu::resolve_attention(AttentionPath::kAuto, f), AttentionPath::kCudnn);  // GPU, bf16, no dropout
  f.dropout = 0.1f;
  EXPECT_EQ(gpu::resolve_attention(AttentionPath::kAuto, f), AttentionPath::kFlash);  // dropout: the own kernel
  f.cudnn_built = false;
  f.dropout = 0.0f;
  EXPECT_EQ(gpu::resolve_attention(AttentionPath::kAuto, f), AttentionPath::kFlash);  // nvcc build without cuDNN
  f.real_gpu = false;
  f.cudnn_built = true;  // (cannot happen: the layer never has cuDNN; real_gpu decides first)
  EXPECT_EQ(gpu::resolve_attention(AttentionPath::kAuto, f), AttentionPath::kFlash);  // the CPU layer
  f.bf16 = false;
  f.flash_supported = false;
  EXPECT_EQ(gpu::resolve_attention(AttentionPath::kAuto, f), AttentionPath::kPortable);  // fp32
  f = all_there();
  f.head_size = 8;  // the tiny test preset
  f.flash_supported = false;
  f.real_gpu = false;
  EXPECT_EQ(gpu::resolve_attention(AttentionPath::kAuto, f), AttentionPath::kPortable);
}

// Each refusal names the path and the reason (the exit-2 message), and portable is never refused.
TEST(AttentionPath, ImpossibleChoicesAreErrorsWithTheReason) {
  AttentionFacts f = all_there();
  EXPECT_EQ(gpu::resolve_attention(AttentionPath::kCudnn, f), AttentionPath::kCudnn);
  EXPECT_EQ(gpu::resolve_attention(AttentionPath::kFlash, f), AttentionPath::kFlash);

  f = all_there();
  f.dropout = 0.1f;
  EXPECT_LLM_ERROR(gpu::resolve_attention(AttentionPath::kCudnn, f), "--attention cudnn: ", "attention dropout",
                   "--attention flash or portable");
  f = all_there();
  f.cudnn_built = false;
  EXPECT_LLM_ERROR(gpu::resolve_attention(AttentionPath::kCudnn, f), "--attention cudnn: ", "built without cuDNN",
                   "scripts/setup.sh");
  f = all_there();
  f.real_gpu = false;
  f.cudnn_built = false;
  EXPECT_LLM_ERROR(gpu::resolve_attention(AttentionPath::kCudnn, f), "--attention cudnn: ", "CUDA-on-CPU build");
  f = all_there();
  f.bf16 = false;
  EXPECT_LLM_ERROR(gpu::resolve_attention(AttentionPath::kCudnn, f), "--attention cudnn: ", "--precision bf16");
  for (int hs : {4, 12, 136, 256}) {
    f = all_there();
    f.head_size = hs;
    EXPECT_LLM_ERROR(gpu::resolve_attention(AttentionPath::kCudnn, f), "--attention cudnn: ",
                     "head size " + std::to_string(hs));
  }
  for (int hs : {8, 16, 32, 96, 128}) {
    f = all_there();
    f.head_size = hs;
    EXPECT_EQ(gpu::attention_unavailable(AttentionPath::kCudnn, f), "") << hs;
  }

  f = all_there();
  f.bf16 = false;
  f.flash_supported = false;
  EXPECT_LLM_ERROR(gpu::resolve_attention(AttentionPath::kFlash, f), "--attention flash: ", "--precision bf16");
  f = all_there();
  f.head_size = 32;
  f.flash_supported = false;
  EXPECT_LLM_ERROR(gpu::resolve_attention(AttentionPath::kFlash, f), "--attention flash: ", "head size 32",
                   "64 or 128");
  f = all_there();
  f.flash_built = false;
  f.flash_supported = false;
  EXPECT_LLM_ERROR(gpu::resolve_attention(AttentionPath::kFlash, f), "--attention flash: ", "no flash attention");
  // flash keeps the reference's dropout mask: dropout is no reason to refuse it
  f = all_there();
  f.dropout = 0.5f;
  EXPECT_EQ(why(AttentionPath::kFlash, f), "");

  for (int bits = 0; bits < 64; bits++) {
    AttentionFacts g;
    g.bf16 = bits & 1;
    g.dropout = (bits & 2) ? 0.2f : 0.0f;
    g.cudnn_built = bits & 4;
    g.real_gpu = bits & 8;
    g.flash_built = bits & 16;
    g.flash_supported = bits & 32;
    g.head_size = 8;
    EXPECT_EQ(gpu::resolve_attention(AttentionPath::kPortable, g), AttentionPath::kPortable);
  }
}

TEST(AttentionPath, StartupLineSaysWhetherAutoChose) {
  EXPECT_EQ(gpu::attention_choice(AttentionPath::kFlash, AttentionPath::kAuto), "flash (auto)");
  EXPECT_EQ(gpu::attention_choice(AttentionPath::kCudnn, AttentionPath::kCudnn), "cudnn");
  EXPECT_EQ(gpu::attention_choice(AttentionPath::kPortable, AttentionPath::kPortable), "portable");
}

// ---------------------------------------------------------------------------------------------------------------
// The flag on train_gpt2cu_cpu (the CUDA-on-CPU build: no cuDNN, flash only where its header is in the build).
#ifdef TRAIN_GPT2CU_BIN
namespace {

using host_test::Result;

Result run(const std::string& dir, const std::string& args) {
  return host_test::run_in_dir(dir, "'" TRAIN_GPT2CU_BIN "' " + args);
}

// shards + a tiny checkpoint (C=32, NH=4: head size 8, which only portable takes on the layer), the same with
// C=128, NH=2 (head size 64: flash on the layer) and a fine-tuning model
std::string setup_dir() {
  const std::string dir = host_test::temp_dir();
  host_test::write_shard(dir + "/train.bin", host_test::lcg_tokens(3000, 1));
  host_test::write_shard(dir + "/val.bin", host_test::lcg_tokens(400, 2));
  llm::GPT2Config c = llm::preset_config("tiny");
  std::vector<float> w(llm::num_parameters(c), 0.01f);
  llm::save_checkpoint(dir + "/tiny.bin", c, w.data());
  c.channels = 128;
  c.num_heads = 2;
  w.assign(llm::num_parameters(c), 0.01f);
  llm::save_checkpoint(dir + "/hs64.bin", c, w.data());
  llm::GPT2Config f;  // fine-tuning needs the GPT-2 vocabulary: 2 blocks of 32 channels, head size 8
  f.num_layers = 2;
  f.channels = 32;
  f.num_heads = 4;
  f.max_seq_len = 64;
  w.assign(llm::num_parameters(f), 0.01f);
  llm::save_checkpoint(dir + "/ft.bin", f, w.data());
  // the first rows of the book's spam split files (header + 16 / 8 rows)
  for (const auto& [name, rows] : std::vector<std::pair<std::string, int>>{{"train", 16}, {"validation", 8}}) {
    std::ifstream in(std::string(LLM_SOURCE_DIR) + "/data/finetune/sms_spam_" + name + ".csv");
    std::ofstream out(dir + "/" + name + ".csv");
    std::string line;
    for (int i = 0; i <= rows && std::getline(in, line); i++) out << line << "\n";
  }
  return dir;
}

const char* kTrain = "train --preset tiny -i train.bin -j val.bin -b 2 -t 16 -x 1 -v 0 -s 0 ";

}  // namespace

TEST(AttentionFlag, ChosenPathIsPrintedAtStartup) {
  const std::string dir = setup_dir();
  Result a = run(dir, kTrain);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_NE(a.out.find("| attention portable (auto)\n"), std::string::npos) << a.out;  // head size 8: portable
  Result p = run(dir, std::string(kTrain) + "--attention portable --precision fp32");
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_NE(p.out.find("| attention portable\n"), std::string::npos) << p.out;
  Result e = run(dir, "eval --model tiny.bin --data val.bin -b 2 -t 16 -m 1 --attention portable");
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_EQ(e.out.rfind("val_loss ", 0), 0u) << e.out;  // stdout unchanged
  EXPECT_NE(e.err.find("attention portable"), std::string::npos) << e.err;
  Result g = run(dir, "generate --model tiny.bin --prompt-ids 1,2,3 --ids -n 4 -t 0");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_NE(g.err.find("train_gpt2cu: attention portable (auto)"), std::string::npos) << g.err;
  EXPECT_EQ(g.out.find("attention"), std::string::npos) << g.out;
  // head size 64: auto takes flash in bf16 (with or without dropout), portable in fp32
  const std::string hs64 = "train -e hs64.bin -i train.bin -j val.bin -b 2 -t 16 -x 1 -v 0 -s 0 ";
  for (const auto& [flags, want] : std::vector<std::pair<std::string, std::string>>{
           {"", "| attention flash (auto)\n"},
           {"--dropout 0.1", "| attention flash (auto)\n"},
           {"--precision fp32", "| attention portable (auto)\n"},
           {"--attention flash --dropout 0.1", "| attention flash\n"}}) {
    Result r = run(dir, hs64 + flags);
    ASSERT_EQ(r.code, 0) << flags << "\n" << r.err;
    EXPECT_NE(r.out.find(want), std::string::npos) << flags << "\n" << r.out;
  }
  Result gf = run(dir, "generate --model hs64.bin --prompt-ids 1,2,3 --ids -n 4 -t 0");
  ASSERT_EQ(gf.code, 0) << gf.err;
  EXPECT_NE(gf.err.find("train_gpt2cu: attention flash (auto)"), std::string::npos) << gf.err;
}

TEST(AttentionFlag, ImpossibleChoicesExitTwo) {
  const std::string dir = setup_dir();
  const std::string ft =
      "finetune-classify --model ft.bin --train train.csv --val validation.csv --epochs 1 -b 8 --max-length 16 "
      "--out x.cls ";
  struct Case {
    std::string args, needle;
  } cases[] = {
      {std::string(kTrain) + "--attention fast", "--attention must be auto, flash, cudnn or portable (got 'fast')"},
      {std::string(kTrain) + "--attention cudnn", "--attention cudnn: this is the CUDA-on-CPU build"},
      {std::string(kTrain) + "--attention cudnn --dropout 0.1", "--attention cudnn: "},
      {std::string(kTrain) + "--attention flash --precision fp32", "--attention flash: "},
      {std::string(kTrain) + "--attention flash", "--attention flash: "},
      {"eval --model tiny.bin --data val.bin -b 2 -t 16 --attention cudnn", "--attention cudnn: "},
      {"eval --model tiny.bin --data val.bin -b 2 -t 16 --attention flash", "--attention flash: "},
      {"generate --model tiny.bin --prompt-ids 1,2 --ids -n 2 --attention cudnn", "--attention cudnn: "},
      {"generate --model tiny.bin --prompt-ids 1,2 --ids -n 2 --attention flash", "--attention flash: "},
      {"generate --model tiny.bin --prompt-ids 1,2 --ids -n 2 --attention slow", "--attention"},
      {ft + "--attention cudnn", "--attention cudnn: "},
      {ft + "--attention flash --precision fp32", "--attention flash: "},
      {ft + "--attention nope", "--attention"},
  };
  for (const Case& c : cases) {
    Result r = run(dir, c.args);
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find("error: "), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_EQ(r.out.find("step "), std::string::npos) << "no training step for " << c.args;
    EXPECT_EQ(r.out.find("val_loss"), std::string::npos) << c.args;
  }
  // classify (a .cls file from finetune-classify) takes the flag too
  Result made = run(dir, ft + "--attention portable --precision fp32");
  ASSERT_EQ(made.code, 0) << made.out << made.err;
  EXPECT_NE(made.err.find("train_gpt2cu: attention portable"), std::string::npos) << made.err;
  Result cls = run(dir, "classify --model x.cls --text hi --precision fp32 --attention auto");
  EXPECT_EQ(cls.code, 0) << cls.err;
  EXPECT_NE(cls.err.find("train_gpt2cu: attention portable (auto)"), std::string::npos) << cls.err;
  EXPECT_EQ(cls.out.find("attention"), std::string::npos) << cls.out;
  for (const char* bad : {"--attention cudnn", "--attention flash --precision fp32", "--attention bogus"}) {
    Result r = run(dir, std::string("classify --model x.cls --text hi ") + bad);
    EXPECT_EQ(r.code, 2) << bad << "\n" << r.err;
    EXPECT_NE(r.err.find("error: --attention"), std::string::npos) << bad << "\n" << r.err;
    EXPECT_EQ(r.out, "") << bad;
  }
}
#endif
