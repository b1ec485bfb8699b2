// test_weights_util.h — helpers shared by the weights tests (fixture paths, ref.json, temp dirs, raw files).
#pragma once
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace wt {

inline std::string fixture(const std::string& rel) { return std::string(LLM_SOURCE_DIR) + "/tests/fixtures/hf/" + rel; }

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// A fresh directory under /tmp, unique per process and name.
inline std::string temp_dir(const std::string& name) {
  std::string d = "/tmp/llm_weights_test_" + std::to_string(getpid()) + "_" + name;
  std::string cmd = "rm -rf '" + d + "' && mkdir -p '" + d + "'";
  if (std::system(cmd.c_str()) != 0) std::abort();
  return d;
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), (std::streamsize)bytes.size());
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A safetensors file from raw parts: u64 header length (or `len_override`), header text, data bytes.
inline std::string st_bytes(const std::string& header, const std::string& data, long long len_override = -1) {
  uint64_t n = len_override >= 0 ? (uint64_t)len_override : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; i++) out[i] = (char)(n >> (8 * i));
  return out + header + data;
}

// Runs a shell command, returns its exit status and captures stdout / stderr.
struct RunResult {
  int code;
  std::string out, err;
};
inline RunResult run(const std::string& cmd, const std::string& tag) {
  const std::string o = "/tmp/llm_weights_test_" + std::to_string(getpid()) + "_" + tag + ".out";
  const std::string e = o + ".err";
  int status = std::system((cmd + " >'" + o + "' 2>'" + e + "'").c_str());
  RunResult r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_bytes(o), read_bytes(e)};
  std::remove(o.c_str());
  std::remove(e.c_str());
  return r;
}

}  // namespace wt
