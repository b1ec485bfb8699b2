// token_shard.cpp — reading and writing llm.c token shards (format in token_shard.h).
#include "host/token_shard.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "host/error.h"
#include "host/memory.h"

namespace llm {

namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

File open_or_fail(const std::string& path, const char* mode) {
  struct stat st;
  if (mode[0] == 'r' && ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) fail(path, ": not a regular file");
  std::FILE* f = std::fopen(path.c_str(), mode);
  if (!f) fail(path, ": cannot open (", std::strerror(errno), ")");
  return File(f);
}

uint64_t file_size(std::FILE* f, const std::string& path) {
  if (std::fseek(f, 0, SEEK_END) != 0) fail(path, ": cannot seek");
  long sz = std::ftell(f);
  if (sz < 0) fail(path, ": cannot tell size");
  std::rewind(f);
  return uint64_t(sz);
}

std::string tmp_name(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

// Header checks shared by the readers; returns N.
size_t check_header(std::FILE* f, const std::string& path) {
  uint64_t size = file_size(f, path);
  if (size < kShardHeaderBytes) fail(path, ": ", size, " bytes, too small for the 1024-byte shard header");
  int32_t h[256];
  if (std::fread(h, sizeof h, 1, f) != 1) fail(path, ": cannot read the shard header");
  if (h[0] != kShardMagic) fail(path, ": bad magic ", h[0], " (expected ", kShardMagic, ", an llm.c token shard)");
  if (h[1] != kShardVersion) fail(path, ": unsupported shard version ", h[1], " (expected 1, uint16 tokens)");
  if (h[2] < 0) fail(path, ": negative token count ", h[2]);
  uint64_t want = kShardHeaderBytes + 2 * uint64_t(h[2]);
  if (size != want)
    fail(path, ": file size ", size, " does not match the header's ", h[2], " tokens (expected ", want, " bytes)");
  return size_t(h[2]);
}

}  // namespace

size_t read_token_shard_header(const std::string& path) {
  File f = open_or_fail(path, "rb");
  return check_header(f.get(), path);
}

std::vector<uint16_t> read_token_shard(const std::string& path) {
  File f = open_or_fail(path, "rb");
  size_t n = check_header(f.get(), path);
  check_memory(path, 2 * static_cast<uint64_t>(n), std::to_string(n) + " tokens");
  std::vector<uint16_t> tokens(n);
  if (n && std::fread(tokens.data(), 2, n, f.get()) != n) fail(path, ": truncated while reading ", n, " tokens");
  return tokens;
}

void write_token_shard(const std::string& path, const uint16_t* tokens, size_t n) {
  TokenShardWriter w(path);
  w.append(tokens, n);
  w.commit();
}

void write_token_shard(const std::string& path, const std::vector<uint16_t>& tokens) {
  write_token_shard(path, tokens.data(), tokens.size());
}

// ---------------------------------------------------------------------------------------------

TokenShardWriter::TokenShardWriter(const std::string& path) : path_(path), tmp_(tmp_name(path)) {
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail(path, ": cannot create (", std::strerror(errno), ")");
  int32_t h[256] = {kShardMagic, kShardVersion, 0};
  if (std::fwrite(h, sizeof h, 1, f_) != 1) fail(path, ": write failed");
}

TokenShardWriter::~TokenShardWriter() {
  if (f_) std::fclose(f_);
  if (!renamed_) std::remove(tmp_.c_str());
}

void TokenShardWriter::append(const uint16_t* tokens, size_t n) {
  if (finished_) fail(path_, ": append after finish");
  if (count_ + n > size_t(INT32_MAX)) fail(path_, ": more than 2^31-1 tokens in one shard");
  if (n && std::fwrite(tokens, 2, n, f_) != n) fail(path_, ": write failed (", std::strerror(errno), ")");
  count_ += n;
}

void TokenShardWriter::finish() {
  if (finished_) return;
  int32_t n = int32_t(count_);
  bool ok = std::fseek(f_, 2 * sizeof(int32_t), SEEK_SET) == 0 && std::fwrite(&n, sizeof n, 1, f_) == 1;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok) fail(path_, ": write failed (", std::strerror(errno), ")");
  finished_ = true;
}

void TokenShardWriter::rename_to(const std::string& final_path) {
  if (!finished_) finish();
  if (std::rename(tmp_.c_str(), final_path.c_str()) != 0)
    fail(final_path, ": cannot rename the finished shard into place (", std::strerror(errno), ")");
  renamed_ = true;
}

// ---------------------------------------------------------------------------------------------

std::string read_file_bytes(const std::string& path) {
  File f = open_or_fail(path, "rb");
  uint64_t size = file_size(f.get(), path);
  check_memory(path, size, "reading the file");
  std::string data(size, '\0');
  if (size && std::fread(&data[0], 1, size, f.get()) != size) fail(path, ": read failed");
  return data;
}

void write_file_atomic(const std::string& path, const std::string& data) {
  std::string tmp = tmp_name(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, ": cannot create (", std::strerror(errno), ")");
  bool ok = data.empty() || std::fwrite(data.data(), 1, data.size(), f) == data.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, ": write failed (", std::strerror(errno), ")");
  }
}

}  // namespace llm
