// Training-state file: exact round trip and bad-input cases.
#include "host/error.h"
#include "host/train_state.h"
#include "host_test_util.h"

using namespace host_test;

static llm::TrainState sample_state(size_t n) {
  llm::TrainState s;
  s.step = 123456789012ll;  // needs both 32-bit header words
  s.seed = 0xDEADBEEFCAFEF00Dull;
  s.loader.epoch = 3;
  s.loader.shard = 1;
  s.loader.window = 77;
  s.fingerprint = "model tiny B=2 T=8\nlr=0.001";
  s.m.resize(n);
  s.v.resize(n);
  for (size_t i = 0; i < n; i++) {
    s.m[i] = 0.001f * static_cast<float>(i) - 0.5f;
    s.v[i] = 1e-7f * static_cast<float>(i * i);
  }
  return s;
}

TEST(HostTrainState, RoundTripIsExact) {
  const std::string dir = temp_dir(), path = dir + "/state.bin";
  auto s = sample_state(1000);
  llm::save_train_state(path, s);
  EXPECT_FALSE(exists(path + ".tmp"));
  EXPECT_EQ(read_bytes(path).size(), 1024 + s.fingerprint.size() + 8 * 1000);
  auto r = llm::load_train_state(path, 1000);
  EXPECT_EQ(r.step, s.step);
  EXPECT_EQ(r.seed, s.seed);
  EXPECT_EQ(r.loader.epoch, 3);
  EXPECT_EQ(r.loader.shard, 1);
  EXPECT_EQ(r.loader.window, 77);
  EXPECT_EQ(r.fingerprint, s.fingerprint);
  EXPECT_EQ(r.m, s.m);
  EXPECT_EQ(r.v, s.v);
}

TEST(HostTrainState, BadInputs) {
  const std::string dir = temp_dir(), path = dir + "/state.bin", bad = dir + "/bad.bin";
  llm::save_train_state(path, sample_state(100));
  const auto bytes = read_bytes(path);
  EXPECT_LLM_ERROR(llm::load_train_state(path, 101), path, "100 parameters", "101");
  auto b = bytes;
  set_i32(b, 0, 20240326);
  write_bytes(bad, b);
  EXPECT_LLM_ERROR(llm::load_train_state(bad, 100), bad, "bad magic");
  b = bytes;
  set_i32(b, 1, 3);
  write_bytes(bad, b);
  EXPECT_LLM_ERROR(llm::load_train_state(bad, 100), bad, "version 3");
  b = bytes;
  b.pop_back();
  write_bytes(bad, b);
  EXPECT_LLM_ERROR(llm::load_train_state(bad, 100), bad, "truncated");
  b = bytes;
  b.push_back(1);
  write_bytes(bad, b);
  EXPECT_LLM_ERROR(llm::load_train_state(bad, 100), bad, "oversized");
  b = bytes;
  b.resize(10);
  write_bytes(bad, b);
  EXPECT_LLM_ERROR(llm::load_train_state(bad, 100), bad, "truncated");
  b = bytes;
  set_i32(b, 14, 1 << 30);
  write_bytes(bad, b);
  EXPECT_LLM_ERROR(llm::load_train_state(bad, 100), bad, "fingerprint length");
  EXPECT_LLM_ERROR(llm::load_train_state(dir + "/missing.bin", 100), dir + "/missing.bin", "cannot open");
}
