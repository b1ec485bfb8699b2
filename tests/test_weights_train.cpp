// gpt2_cpu train -e / eval --model with Hugging Face weights: fine-tuning starts from exactly the loaded model.
//
// The same tiny transformers model (tests/fixtures/hf, untied head = tiny_b, tied = tiny_a) is given three ways —
// the HF directory, the model.safetensors file (config.json beside it) and the llm.c .bin written from it — and
// two training steps must log bit-identical losses (the weights are identical, so is every float), the first
// of which is the `eval` loss of that model on the first batch. A config.json that disagrees with the tensors,
// a corrupt file and a missing path exit 2 with a message naming the file.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "host/checkpoint.h"
#include "host/hf_gpt2.h"
#include "host_test_util.h"
#include "test_weights_util.h"

#ifdef GPT2_CPU_BIN
namespace {

const char* kFlags = " -i train.bin -b 2 -t 16 -x 2 -v 0 -s 0 -l 1e-3 -u 0 --threads 1 ";

}  // namespace

TEST(TrainFromWeights, SafetensorsDirFileAndBinGiveTheSameStepsAndEvalLoss) {
  for (const char* name : {"tiny_b", "tiny_a"}) {
    SCOPED_TRACE(name);
    const std::string dir = wt::temp_dir(std::string("train_") + name);
    host_test::write_shard(dir + "/train.bin", host_test::lcg_tokens(2000, 1));
    llm::LoadedModel m = llm::load_model(wt::fixture(name));
    llm::save_checkpoint(dir + "/model.bin", m.config, m.params.data());
    const std::string sources[] = {wt::fixture(name), wt::fixture(std::string(name) + "/model.safetensors"),
                                   dir + "/model.bin"};
    std::vector<std::vector<std::string>> logs;
    for (size_t i = 0; i < 3; i++) {
      const std::string out = "run" + std::to_string(i);
      auto r = wt::run("cd '" + dir + "' && " GPT2_CPU_BIN " train -e " + sources[i] + kFlags + "-o " + out, "train");
      ASSERT_EQ(r.code, 0) << sources[i] << "\n" << r.out << r.err;
      EXPECT_NE(r.out.find("model checkpoint " + sources[i]), std::string::npos) << r.out;
      logs.push_back(host_test::train_losses(dir + "/" + out + "/main.log"));
      ASSERT_EQ(logs.back().size(), 2u) << sources[i];
    }
    EXPECT_EQ(logs[0], logs[1]) << "HF directory vs model.safetensors file";
    EXPECT_EQ(logs[0], logs[2]) << "HF directory vs the llm.c .bin of the same weights";
    EXPECT_NE(logs[0][0], logs[0][1]) << "the second step must see updated weights";
    // The first step's loss is the loss of the loaded model on the first B x T window: eval of that model.
    auto e = wt::run("cd '" + dir + "' && " GPT2_CPU_BIN " eval --model " + sources[0] +
                         " --data train.bin -b 2 -t 16 -m 1 --threads 1", "eval");
    ASSERT_EQ(e.code, 0) << e.err;
    ASSERT_EQ(e.out.rfind("val_loss ", 0), 0u) << e.out;
    EXPECT_EQ(e.out.substr(9, e.out.find('\n') - 9), logs[0][0]) << e.out;
    // a model that was never loaded (random init) starts elsewhere: the comparison above can fail
    auto p = wt::run("cd '" + dir + "' && " GPT2_CPU_BIN " train --preset tiny" + std::string(kFlags) + "-o preset",
                     "preset");
    ASSERT_EQ(p.code, 0) << p.err;
    EXPECT_NE(host_test::train_losses(dir + "/preset/main.log")[0], logs[0][0]);
  }
}

TEST(TrainFromWeights, MismatchingConfigAndBadFilesExitTwo) {
  const std::string dir = wt::temp_dir("train_bad");
  host_test::write_shard(dir + "/train.bin", host_test::lcg_tokens(2000, 1));
  // config.json that disagrees with the tensors: n_embd 64 for a 32-wide model
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "/wide' && cp " + wt::fixture("tiny_a/model.safetensors") + " '" + dir +
                         "/wide/'").c_str()), 0);
  std::string cfg = wt::read_bytes(wt::fixture("tiny_a/config.json"));
  cfg.replace(cfg.find("\"n_embd\": 32"), 12, "\"n_embd\": 64");
  wt::write_bytes(dir + "/wide/config.json", cfg);
  // one more layer in config.json than in the file
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "/deep' && cp " + wt::fixture("tiny_a/model.safetensors") + " '" + dir +
                         "/deep/'").c_str()), 0);
  cfg = wt::read_bytes(wt::fixture("tiny_a/config.json"));
  cfg.replace(cfg.find("\"n_layer\": 2"), 12, "\"n_layer\": 3");
  wt::write_bytes(dir + "/deep/config.json", cfg);
  wt::write_bytes(dir + "/junk.safetensors", "this is not a safetensors file");
  wt::write_bytes(dir + "/junk.bin", std::string(2048, '\x07'));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"wide", "has shape (500, 32), expected (500, 64)"},
      {"deep", "missing tensor 'transformer.h.2.ln_1.weight'"},
      {"junk.safetensors", "junk.safetensors"},
      {"junk.bin", "junk.bin"},
      {"missing/model.safetensors", "missing/model.safetensors: cannot open"},
      {"emptydir/", "directory has no model.safetensors"},
  };
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "/emptydir'").c_str()), 0);
  for (const auto& [src, needle] : cases) {
    for (const std::string& cmd : {"train -e " + src + kFlags + "-o out", "eval --data train.bin -b 2 -t 16 --model " + src}) {
      auto r = wt::run("cd '" + dir + "' && " GPT2_CPU_BIN " " + cmd, "train_bad");
      EXPECT_EQ(r.code, 2) << cmd << "\n" << r.out << r.err;
      EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
      EXPECT_NE(r.err.find(needle), std::string::npos) << cmd << ": " << r.err;
    }
  }
  EXPECT_NE(std::system(("test -e '" + dir + "/out'").c_str()), 0) << "nothing is written before the inputs check out";
}
#endif
