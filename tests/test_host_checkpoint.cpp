// Checkpoint files: fp32 save->load identity, bf16 round-to-nearest-even, llm.c header layout, and every
// bad-input case (each must be one llm::Error naming the file).
#include <cmath>
#include <random>

#include "host/checkpoint.h"
#include "host/error.h"
#include "host_test_util.h"

using namespace host_test;

namespace {

llm::GPT2Config tiny(bool qkv_bias = true, bool tied = true) {
  llm::GPT2Config c = llm::preset_config("tiny");
  c.qkv_bias = qkv_bias;
  c.tied_head = tied;
  return c;
}

std::vector<float> random_params(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.5f);
  std::vector<float> p(n);
  for (auto& x : p) x = d(rng);
  return p;
}

// Independent bf16 reference: pick the nearer of the two neighbouring bf16 values in double precision,
// ties to the one with an even last mantissa bit.
uint16_t bf16_reference(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  uint16_t lo = static_cast<uint16_t>(bits >> 16), hi = static_cast<uint16_t>(lo + 1);
  double dlo = llm::bf16_to_fp32(lo), dhi = llm::bf16_to_fp32(hi), dx = x;
  double elo = std::fabs(dx - dlo), ehi = std::fabs(dhi - dx);
  if (elo < ehi) return lo;
  if (ehi < elo) return hi;
  return (lo & 1) ? hi : lo;
}

}  // namespace

TEST(HostCheckpoint, Fp32SaveLoadIsIdentity) {
  const std::string dir = temp_dir(), path = dir + "/m.bin";
  for (bool bias : {true, false}) {
    for (bool tied : {true, false}) {
      llm::GPT2Config c = tiny(bias, tied);
      auto p = random_params(llm::num_parameters(c), 7);
      llm::save_checkpoint(path, c, p.data());
      EXPECT_FALSE(exists(path + ".tmp"));
      auto bytes = read_bytes(path);
      ASSERT_EQ(bytes.size(), 1024 + 4 * llm::num_parameters(c));
      // llm.c header layout
      EXPECT_EQ(get_i32(bytes, 0), 20240326);
      EXPECT_EQ(get_i32(bytes, 1), 3);
      EXPECT_EQ(get_i32(bytes, 2), 64);
      EXPECT_EQ(get_i32(bytes, 3), 256);
      EXPECT_EQ(get_i32(bytes, 4), 2);
      EXPECT_EQ(get_i32(bytes, 5), 4);
      EXPECT_EQ(get_i32(bytes, 6), 32);
      EXPECT_EQ(get_i32(bytes, 7), 256);
      EXPECT_EQ(get_i32(bytes, 8), bias ? 0 : 1);
      EXPECT_EQ(get_i32(bytes, 9), tied ? 0 : 1);
      EXPECT_EQ(std::memcmp(bytes.data() + 1024, p.data(), 4 * p.size()), 0);

      std::vector<float> q;
      llm::CheckpointInfo info = llm::load_checkpoint(path, &q);
      EXPECT_EQ(info.dtype, llm::CheckpointDtype::kFp32);
      EXPECT_EQ(info.config.qkv_bias, bias);
      EXPECT_EQ(info.config.tied_head, tied);
      EXPECT_EQ(info.config.channels, 32);
      EXPECT_EQ(info.config.padded_vocab_size, 256);
      ASSERT_EQ(q.size(), p.size());
      EXPECT_EQ(std::memcmp(q.data(), p.data(), 4 * p.size()), 0);
    }
  }
}

TEST(HostCheckpoint, Bf16ClosedFormRounding) {
  EXPECT_EQ(llm::fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(llm::fp32_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(llm::fp32_to_bf16(1.0f + 0x1p-8f), 0x3F80);            // tie, 0x3F80 is even -> down
  EXPECT_EQ(llm::fp32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82);        // tie, 0x3F81 is odd -> up
  EXPECT_EQ(llm::fp32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);  // just above the tie -> up
  EXPECT_EQ(llm::fp32_to_bf16(1.0f + 0x1p-8f - 0x1p-20f), 0x3F80);  // just below -> down
  EXPECT_EQ(llm::fp32_to_bf16(3.4028235e38f), 0x7F80);              // FLT_MAX rounds to +inf
  EXPECT_EQ(llm::fp32_to_bf16(INFINITY), 0x7F80);
  uint16_t nan = llm::fp32_to_bf16(NAN);
  EXPECT_TRUE(std::isnan(llm::bf16_to_fp32(nan)));
  EXPECT_FLOAT_EQ(llm::bf16_to_fp32(0x3FC0), 1.5f);
}

TEST(HostCheckpoint, Bf16SaveLoadEqualsRoundToNearestEven) {
  const std::string dir = temp_dir(), path = dir + "/m_bf16.bin";
  llm::GPT2Config c = tiny(false, false);
  auto p = random_params(llm::num_parameters(c), 11);
  p[0] = 1.0f + 0x1p-8f;  // a tie
  p[1] = 1.0f + 3 * 0x1p-8f;
  llm::save_checkpoint(path, c, p.data(), llm::CheckpointDtype::kBf16);
  auto bytes = read_bytes(path);
  ASSERT_EQ(bytes.size(), 1024 + 2 * p.size());
  EXPECT_EQ(get_i32(bytes, 1), 5);
  std::vector<float> q;
  auto info = llm::load_checkpoint(path, &q);
  EXPECT_EQ(info.dtype, llm::CheckpointDtype::kBf16);
  ASSERT_EQ(q.size(), p.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < p.size(); i++) {
    uint16_t want = bf16_reference(p[i]);
    uint16_t stored;
    std::memcpy(&stored, bytes.data() + 1024 + 2 * i, 2);
    if (stored != want || q[i] != llm::bf16_to_fp32(want)) mismatches++;
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(q[0], 1.0f);
  EXPECT_EQ(q[1], 1.0f + 4 * 0x1p-8f);
}

TEST(HostCheckpoint, HeaderOnlyRead) {
  const std::string dir = temp_dir(), path = dir + "/m.bin";
  llm::GPT2Config c = tiny();
  auto p = random_params(llm::num_parameters(c), 3);
  llm::save_checkpoint(path, c, p.data());
  auto info = llm::read_checkpoint_header(path);
  EXPECT_EQ(info.config.num_layers, 2);
  EXPECT_EQ(info.config.vocab_size, 256);
  EXPECT_EQ(llm::num_parameters(info.config), p.size());
}

class HostCheckpointBad : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = temp_dir();
    good = dir + "/good.bin";
    bad = dir + "/bad.bin";
    llm::GPT2Config c = tiny();
    auto p = random_params(llm::num_parameters(c), 5);
    llm::save_checkpoint(good, c, p.data());
    bytes = read_bytes(good);
  }
  void expect_bad(const std::vector<uint8_t>& b, const std::string& why) {
    write_bytes(bad, b);
    std::vector<float> q;
    EXPECT_LLM_ERROR(llm::load_checkpoint(bad, &q), bad, why);
    EXPECT_LLM_ERROR(llm::read_checkpoint_header(bad), bad, why);
  }
  std::string dir, good, bad;
  std::vector<uint8_t> bytes;
};

TEST_F(HostCheckpointBad, WrongMagic) {
  set_i32(bytes, 0, 20240520);
  expect_bad(bytes, "bad magic");
}
TEST_F(HostCheckpointBad, WrongVersion) {
  set_i32(bytes, 1, 4);
  expect_bad(bytes, "version 4");
  set_i32(bytes, 1, 1);
  expect_bad(bytes, "version 1");
}
TEST_F(HostCheckpointBad, Truncated) {
  auto b = bytes;
  b.resize(b.size() - 3);
  expect_bad(b, "truncated");
  b.resize(600);  // not even a header
  expect_bad(b, "truncated");
  expect_bad({}, "truncated");
}
TEST_F(HostCheckpointBad, Oversized) {
  auto b = bytes;
  b.push_back(0);
  b.push_back(0);
  expect_bad(b, "oversized");
}
TEST_F(HostCheckpointBad, HeaderDisagreesWithFileSize) {
  auto b = bytes;
  set_i32(b, 4, 3);  // L = 3: needs more bytes than the file has
  expect_bad(b, "disagrees with the header");
  b = bytes;
  set_i32(b, 8, 1);  // claims no qkv bias: the file is then too large for the header
  expect_bad(b, "disagrees with the header");
  b = bytes;
  set_i32(b, 1, 5);  // claims bf16: half the size
  expect_bad(b, "disagrees with the header");
}
TEST_F(HostCheckpointBad, FieldsOutOfRange) {
  auto b = bytes;
  set_i32(b, 6, 0);
  expect_bad(b, "channels");
  b = bytes;
  set_i32(b, 5, 5);  // 32 % 5 != 0
  expect_bad(b, "not divisible by num_heads");
  b = bytes;
  set_i32(b, 7, 100);  // Vp < V
  expect_bad(b, "padded_vocab_size");
  b = bytes;
  set_i32(b, 2, -1);
  expect_bad(b, "max_seq_len");
  b = bytes;
  set_i32(b, 9, 2);
  expect_bad(b, "slot 9");
  b = bytes;
  set_i32(b, 100, 7);
  expect_bad(b, "slot 100");
}
TEST_F(HostCheckpointBad, MissingFile) {
  std::vector<float> q;
  EXPECT_LLM_ERROR(llm::load_checkpoint(dir + "/nope.bin", &q), dir + "/nope.bin", "cannot open");
  EXPECT_LLM_ERROR(llm::load_checkpoint(dir, &q), dir, "directory");
}
TEST_F(HostCheckpointBad, UnwritableDestinationLeavesNothing) {
  llm::GPT2Config c = tiny();
  auto p = random_params(llm::num_parameters(c), 5);
  const std::string out = dir + "/no/such/dir/m.bin";
  EXPECT_LLM_ERROR(llm::save_checkpoint(out, c, p.data()), out, "cannot create");
  EXPECT_FALSE(exists(out));
  EXPECT_FALSE(exists(out + ".tmp"));
}
