// token_shard.h — llm.c token shards: the files the trainers read.
//
// Format (llm.c dev/data/data_common.py, "gpt-2" variant): a 1024-byte header of 256 int32
//   [0] magic 20240520, [1] version 1, [2] number of tokens N, rest 0
// followed by N little-endian uint16 token ids. The file size must be exactly 1024 + 2N.
// Every reader below checks magic, version and size and throws llm::Error naming the file.
// Writers write "<path>.tmp.<pid>" and rename it over <path>, so a shard is never seen half-written.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace llm {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;
constexpr size_t kShardHeaderBytes = 1024;  // 256 x int32

// Reads the header and checks it against the file size; returns N.
size_t read_token_shard_header(const std::string& path);
// Reads a whole shard.
std::vector<uint16_t> read_token_shard(const std::string& path);
// Writes a whole shard atomically.
void write_token_shard(const std::string& path, const uint16_t* tokens, size_t n);
void write_token_shard(const std::string& path, const std::vector<uint16_t>& tokens);

// Streaming writer: tokens go straight to "<path>.tmp.<pid>" (memory does not grow with the shard);
// commit() fixes the header and renames; the destructor removes an uncommitted temporary.
class TokenShardWriter {
 public:
  explicit TokenShardWriter(const std::string& path);
  ~TokenShardWriter();
  TokenShardWriter(const TokenShardWriter&) = delete;
  TokenShardWriter& operator=(const TokenShardWriter&) = delete;
  void append(const uint16_t* tokens, size_t n);
  size_t size() const { return count_; }
  // Closes the temporary with the final header; rename_to() then moves it to `final_path`
  // (defaults to the constructor's path). Split in two so that a caller can finish several shards
  // and rename them only once all succeeded.
  void finish();
  void rename_to(const std::string& final_path);
  void commit() { finish(); rename_to(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  size_t count_ = 0;
  bool finished_ = false, renamed_ = false;
};

// Small file helpers shared by the tokenizer code.
std::string read_file_bytes(const std::string& path);                    // whole file; Error if unreadable
void write_file_atomic(const std::string& path, const std::string& data);  // tmp + rename

}  // namespace llm
