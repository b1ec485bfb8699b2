// test_tokenizer_common.h — shared helpers for the tokenizer tests: the repo tokenizer, the
// tiktoken reference cases (tests/fixtures/tokenizer/cases.json) and the FNV-1a hash they use.
#pragma once
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>
#include <vector>

#include "host/token_shard.h"
#include "host/tokenizer.h"

namespace tokt {

inline std::string src(const std::string& rel) { return std::string(LLM_SOURCE_DIR) + "/" + rel; }

inline const llm::Tokenizer& gpt2() {
  static const llm::Tokenizer t =
      llm::Tokenizer::from_files(src("data/gpt2/encoder.json"), src("data/gpt2/vocab.bpe"));
  return t;
}

inline const nlohmann::json& fixture() {
  static const nlohmann::json j = nlohmann::json::parse(llm::read_file_bytes(src("tests/fixtures/tokenizer/cases.json")));
  return j;
}

// FNV-1a 64 over each id as 4 little-endian bytes (same as the generator).
template <class Vec>
inline std::string fnv64(const Vec& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (auto t : ids)
    for (int k = 0; k < 4; ++k) {
      h ^= (uint32_t(t) >> (8 * k)) & 0xFF;
      h *= 0x100000001b3ull;
    }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

inline std::string unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out += char(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

// A fresh scratch directory under /tmp, removed by the caller's TearDown if wanted.
inline std::string temp_dir(const std::string& tag) {
  std::string tmpl = "/tmp/llm_" + tag + "_XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* d = mkdtemp(buf.data());
  return d ? std::string(d) : std::string("/tmp");
}

}  // namespace tokt
