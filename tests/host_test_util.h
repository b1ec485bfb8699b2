// host_test_util.h — small helpers for the host tests: a fresh temp dir per test, whole-file byte access,
// a hand-written llm.c token shard (written here byte by byte, independent of the code under test), the
// pseudo-random tokens of the end-to-end tests' shards, and running a program as a subprocess.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace host_test {

// A new empty directory for the running test (removed by the OS tmp cleaner, names are unique per pid+test).
inline std::string temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir = ::testing::TempDir() + "llm_host_" + std::to_string(getpid()) + "_" + info->test_suite_name() +
                    "_" + info->name();
  std::string cmd = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
  if (std::system(cmd.c_str()) != 0) ADD_FAILURE() << "cannot create " << dir;
  return dir;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline void set_i32(std::vector<uint8_t>& bytes, int slot, int32_t v) { std::memcpy(&bytes[slot * 4], &v, 4); }
inline int32_t get_i32(const std::vector<uint8_t>& bytes, int slot) {
  int32_t v;
  std::memcpy(&v, &bytes[slot * 4], 4);
  return v;
}

// llm.c token shard: header {20240520, 1, N, 0...} then N uint16.
inline void write_shard(const std::string& path, const std::vector<uint16_t>& tokens, int32_t magic = 20240520,
                        int32_t version = 1) {
  std::vector<uint8_t> bytes(1024 + 2 * tokens.size(), 0);
  set_i32(bytes, 0, magic);
  set_i32(bytes, 1, version);
  set_i32(bytes, 2, static_cast<int32_t>(tokens.size()));
  std::memcpy(bytes.data() + 1024, tokens.data(), 2 * tokens.size());
  write_bytes(path, bytes);
}

inline bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// n tokens < 200 from a fixed LCG (the shards of the end-to-end tests: train.bin seed 1, val.bin seed 2).
inline std::vector<uint16_t> lcg_tokens(int n, uint32_t seed) {
  std::vector<uint16_t> tok(n);
  uint32_t s = seed;
  for (int i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    tok[i] = (uint16_t)((i * 7 + (s >> 29)) % 200);
  }
  return tok;
}

// A fresh temp directory with the end-to-end tests' shards: train.bin (3000 LCG tokens) and val.bin (400).
inline std::string lcg_shard_dir() {
  const std::string dir = temp_dir();
  write_shard(dir + "/train.bin", lcg_tokens(3000, 1));
  write_shard(dir + "/val.bin", lcg_tokens(400, 2));
  return dir;
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The loss after each "train" word of a main.log, as printed, in step order.
inline std::vector<std::string> train_losses(const std::string& log_path) {
  std::vector<std::string> v;
  std::istringstream in(slurp(log_path));
  for (std::string w; in >> w;)
    if (w == "train") {
      in >> w;
      v.push_back(w);
    }
  return v;
}

// A program run as a subprocess: its exit code (-1 when it did not exit normally), stdout and stderr.
struct Result {
  int code = -1;
  std::string out, err;
};

// Runs the shell command line `cmd` inside dir, capturing its output in dir/stdout.txt and dir/stderr.txt.
inline Result run_in_dir(const std::string& dir, const std::string& cmd) {
  const int status = std::system(("cd '" + dir + "' && " + cmd + " > stdout.txt 2> stderr.txt").c_str());
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(dir + "/stdout.txt");
  r.err = slurp(dir + "/stderr.txt");
  return r;
}

// Expects `stmt` to throw llm::Error whose message contains every string in `parts`.
#define EXPECT_LLM_ERROR(stmt, ...)                                                          \
  do {                                                                                       \
    try {                                                                                    \
      stmt;                                                                                  \
      ADD_FAILURE() << "expected llm::Error from " #stmt;                                    \
    } catch (const llm::Error& e) {                                                          \
      for (const std::string& part : std::vector<std::string>{__VA_ARGS__})                  \
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos)                       \
            << "message '" << e.what() << "' lacks '" << part << "'";                        \
    }                                                                                        \
  } while (0)

}  // namespace host_test
