// test_tokenizer_shard.cpp — llm.c token shard I/O: round trip and every malformed-shard case.
#include <gtest/gtest.h>

#include <dirent.h>

#include <fstream>

#include "host/error.h"
#include "tests/test_tokenizer_common.h"

namespace {

std::vector<std::string> list_dir(const std::string& d) {
  std::vector<std::string> out;
  if (DIR* dir = opendir(d.c_str())) {
    while (dirent* e = readdir(dir))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
    closedir(dir);
  }
  return out;
}

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), long(bytes.size()));
}

std::string header(int32_t magic, int32_t version, int32_t n) {
  std::string h(1024, '\0');
  int32_t v[3] = {magic, version, n};
  std::memcpy(&h[0], v, sizeof v);
  return h;
}

void expect_error(const std::string& path, const char* what) {
  try {
    llm::read_token_shard(path);
    ADD_FAILURE() << "accepted " << path;
  } catch (const llm::Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.rfind(path + ":", 0), 0u) << m;  // names the file
    EXPECT_NE(m.find(what), std::string::npos) << m;
  }
}

}  // namespace

TEST(TokenShard, RoundTripAndExactLayout) {
  std::string dir = tokt::temp_dir("shard");
  std::string p = dir + "/s.bin";
  std::vector<uint16_t> toks{50256, 0, 1, 65535, 198, 220};
  llm::write_token_shard(p, toks);
  EXPECT_EQ(llm::read_token_shard(p), toks);
  EXPECT_EQ(llm::read_token_shard_header(p), toks.size());
  std::string bytes = llm::read_file_bytes(p);
  ASSERT_EQ(bytes.size(), 1024 + 2 * toks.size());
  EXPECT_EQ(bytes.substr(0, 1024), header(20240520, 1, int32_t(toks.size())));
  EXPECT_EQ(uint8_t(bytes[1024]), 0x50);  // 50256 = 0xC450, little-endian
  EXPECT_EQ(uint8_t(bytes[1025]), 0xC4);
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"s.bin"});  // no temporary left
  llm::write_token_shard(p, std::vector<uint16_t>{});  // empty shard is a valid file
  EXPECT_TRUE(llm::read_token_shard(p).empty());
  std::remove(p.c_str());
  rmdir(dir.c_str());
}

TEST(TokenShard, StreamingWriterLeavesNothingUncommitted) {
  std::string dir = tokt::temp_dir("shardw");
  {
    llm::TokenShardWriter w(dir + "/a.bin");
    uint16_t t[3] = {1, 2, 3};
    w.append(t, 3);
    w.append(t, 2);
    EXPECT_EQ(w.size(), 5u);
    EXPECT_EQ(list_dir(dir).size(), 1u);  // only the temporary
  }
  EXPECT_TRUE(list_dir(dir).empty());  // destroyed uncommitted: removed
  {
    llm::TokenShardWriter w(dir + "/b.bin");
    uint16_t t[2] = {7, 8};
    w.append(t, 2);
    w.commit();
  }
  EXPECT_EQ(llm::read_token_shard(dir + "/b.bin"), (std::vector<uint16_t>{7, 8}));
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"b.bin"});
  std::remove((dir + "/b.bin").c_str());
  rmdir(dir.c_str());
}

TEST(TokenShard, BadShardsAreRejectedWithTheFileName) {
  std::string dir = tokt::temp_dir("shardbad");
  std::string p = dir + "/bad.bin";
  std::string body(20, '\x01');  // 10 tokens
  write_raw(p, header(20240521, 1, 10) + body);
  expect_error(p, "bad magic 20240521");
  write_raw(p, header(20240520, 7, 10) + body);
  expect_error(p, "unsupported shard version 7");
  write_raw(p, header(20240520, 1, 10) + body.substr(0, 15));  // truncated
  expect_error(p, "does not match the header's 10 tokens");
  write_raw(p, header(20240520, 1, 10) + body + "xx");  // size mismatch, too long
  expect_error(p, "does not match");
  write_raw(p, header(20240520, 1, -5));
  expect_error(p, "negative token count");
  write_raw(p, std::string(100, '\0'));
  expect_error(p, "too small");
  expect_error(dir + "/missing.bin", "cannot open");
  expect_error(dir, "not a regular file");
  EXPECT_THROW(llm::read_token_shard_header(p), llm::Error);
  EXPECT_THROW(llm::write_token_shard(dir + "/no/such/dir/x.bin", std::vector<uint16_t>{1}), llm::Error);
  std::remove(p.c_str());
  rmdir(dir.c_str());
}
