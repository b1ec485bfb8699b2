// Data loader over llm.c token shards: window layout, targets shifted by one, shard order, epochs,
// rank sharding without overlap, position restore, and bad data.
#include <set>

#include "host/data_loader.h"
#include "host/error.h"
#include "host_test_util.h"

using namespace host_test;

namespace {
// tokens[i] = (start + i) % mod: the value at each position identifies where it came from.
std::vector<uint16_t> ramp(int n, int start, int mod = 1000) {
  std::vector<uint16_t> t(n);
  for (int i = 0; i < n; i++) t[i] = static_cast<uint16_t>((start + i) % mod);
  return t;
}
}  // namespace

TEST(HostDataLoader, WindowsAndShiftedTargets) {
  const std::string dir = temp_dir();
  write_shard(dir + "/a_train_000.bin", ramp(37, 0));
  llm::DataLoader dl(dir + "/a_train_000.bin", 2, 4, 1000);
  EXPECT_EQ(dl.windows_per_epoch(), 4);  // floor(36 / 8)
  EXPECT_EQ(dl.total_tokens(), 37);
  std::vector<int> x(8), y(8);
  for (int w = 0; w < 4; w++) {
    dl.next_batch(x.data(), y.data());
    for (int i = 0; i < 8; i++) {
      EXPECT_EQ(x[i], w * 8 + i);
      EXPECT_EQ(y[i], w * 8 + i + 1);
    }
  }
  // wraps into epoch 1
  dl.next_batch(x.data(), y.data());
  EXPECT_EQ(x[0], 0);
  EXPECT_EQ(dl.position().epoch, 1);
  EXPECT_EQ(dl.position().window, 1);
  dl.reset();
  dl.next_batch(x.data(), y.data());
  EXPECT_EQ(x[0], 0);
  EXPECT_EQ(dl.position().epoch, 0);
}

TEST(HostDataLoader, GlobTakesShardsInSortedOrder) {
  const std::string dir = temp_dir();
  write_shard(dir + "/d_train_002.bin", ramp(17, 200));
  write_shard(dir + "/d_train_000.bin", ramp(17, 0));
  write_shard(dir + "/d_train_001.bin", ramp(25, 100));
  write_shard(dir + "/d_val_000.bin", ramp(17, 900));
  llm::DataLoader dl(dir + "/d_train_*.bin", 1, 8, 1000);
  ASSERT_EQ(dl.num_shards(), 3);
  EXPECT_EQ(dl.windows_per_epoch(), 2 + 3 + 2);
  std::vector<int> x(8), y(8), firsts;
  for (int i = 0; i < 7; i++) {
    dl.next_batch(x.data(), y.data());
    firsts.push_back(x[0]);
  }
  EXPECT_EQ(firsts, (std::vector<int>{0, 8, 100, 108, 116, 200, 208}));
}

TEST(HostDataLoader, RanksSplitEveryGlobalWindowWithoutOverlap) {
  const std::string dir = temp_dir();
  write_shard(dir + "/s.bin", ramp(1 + 3 * 2 * 2 * 4, 0));  // exactly 3 global windows for world=2, B=2, T=4
  const int B = 2, T = 4;
  llm::DataLoader single(dir + "/s.bin", B, T, 1000, 0, 1);
  EXPECT_EQ(single.windows_per_epoch(), 6);
  std::vector<int> x(B * T), y(B * T);
  std::vector<int> single_seq;
  for (int i = 0; i < 6; i++) {
    single.next_batch(x.data(), y.data());
    single_seq.insert(single_seq.end(), x.begin(), x.end());
  }
  std::vector<int> interleaved;
  std::set<int> seen;
  llm::DataLoader r0(dir + "/s.bin", B, T, 1000, 0, 2), r1(dir + "/s.bin", B, T, 1000, 1, 2);
  EXPECT_EQ(r0.windows_per_epoch(), 3);
  for (int w = 0; w < 3; w++) {
    for (auto* dl : {&r0, &r1}) {
      dl->next_batch(x.data(), y.data());
      for (int v : x) EXPECT_TRUE(seen.insert(v).second) << "token position " << v << " read twice";
      interleaved.insert(interleaved.end(), x.begin(), x.end());
    }
  }
  EXPECT_EQ(interleaved, single_seq);  // rank r of global window w == single-rank window 2w+r
  EXPECT_THROW(llm::DataLoader(dir + "/s.bin", B, T, 1000, 2, 2), llm::Error);
}

TEST(HostDataLoader, PositionRestoreContinuesExactly) {
  const std::string dir = temp_dir();
  write_shard(dir + "/p_0.bin", ramp(50, 0));
  write_shard(dir + "/p_1.bin", ramp(50, 500));
  llm::DataLoader a(dir + "/p_*.bin", 2, 5, 1000);
  std::vector<int> x(10), y(10), x2(10), y2(10);
  for (int i = 0; i < 7; i++) a.next_batch(x.data(), y.data());
  llm::LoaderPosition pos = a.position();
  llm::DataLoader b(dir + "/p_*.bin", 2, 5, 1000);
  b.set_position(pos);
  for (int i = 0; i < 12; i++) {
    a.next_batch(x.data(), y.data());
    b.next_batch(x2.data(), y2.data());
    EXPECT_EQ(x, x2);
    EXPECT_EQ(y, y2);
  }
  EXPECT_LLM_ERROR(b.set_position({0, 5, 0}), "shard 5");
  EXPECT_LLM_ERROR(b.set_position({0, 0, 99}), "window 99");
}

TEST(HostDataLoader, BadData) {
  const std::string dir = temp_dir();
  // token id >= vocab, found when the window holding it is read
  auto t = ramp(40, 0);
  t[13] = 300;
  write_shard(dir + "/v.bin", t);
  EXPECT_LLM_ERROR(llm::DataLoader(dir + "/v.bin", 1, 8, 256), dir + "/v.bin", "token id 300 at token 13",
                   ">= the model's vocab size 256");
  EXPECT_NO_THROW(llm::DataLoader(dir + "/v.bin", 1, 8, 301));
  // B*T+1 > tokens
  write_shard(dir + "/small.bin", ramp(16, 0));
  EXPECT_LLM_ERROR(llm::DataLoader(dir + "/small.bin", 2, 8, 1000), dir + "/small.bin", "16 tokens", "17");
  // exactly enough
  EXPECT_NO_THROW(llm::DataLoader(dir + "/small.bin", 3, 5, 1000));
  // missing file / no match
  EXPECT_LLM_ERROR(llm::DataLoader(dir + "/none.bin", 1, 4, 1000), dir + "/none.bin", "cannot open");
  EXPECT_LLM_ERROR(llm::DataLoader(dir + "/none_*.bin", 1, 4, 1000), dir + "/none_*.bin", "no files match");
  // wrong magic, wrong version, size disagreeing with the header
  write_shard(dir + "/m.bin", ramp(40, 0), 20240326);
  EXPECT_LLM_ERROR(llm::DataLoader(dir + "/m.bin", 1, 4, 1000), dir + "/m.bin", "bad magic");
  write_shard(dir + "/ver.bin", ramp(40, 0), 20240520, 7);
  EXPECT_LLM_ERROR(llm::DataLoader(dir + "/ver.bin", 1, 4, 1000), dir + "/ver.bin", "version 7");
  auto bytes = read_bytes(dir + "/small.bin");
  bytes.pop_back();
  write_bytes(dir + "/trunc.bin", bytes);
  EXPECT_LLM_ERROR(llm::DataLoader(dir + "/trunc.bin", 1, 4, 1000), dir + "/trunc.bin");
  bytes.push_back(0);
  bytes.push_back(0);
  bytes.push_back(0);
  write_bytes(dir + "/over.bin", bytes);
  EXPECT_LLM_ERROR(llm::DataLoader(dir + "/over.bin", 1, 4, 1000), dir + "/over.bin");
  write_bytes(dir + "/tiny.bin", std::vector<uint8_t>(100, 0));
  EXPECT_LLM_ERROR(llm::DataLoader(dir + "/tiny.bin", 1, 4, 1000), dir + "/tiny.bin");
}
