// tokenizer_impl.h — internals shared by tokenizer.cpp (encode/decode) and tokenizer_files.cpp (loaders).
// Not part of the public API.
#pragma once
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "host/tokenizer.h"

namespace llm {
namespace tok {

// 64-bit hash of a short byte string (multiply-xorshift over 8-byte words).
inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  std::memcpy(&w, p, n);
  h = (h ^ w) * 0x94d049bb133111ebull;
  h ^= h >> 29;
  return h;
}

// Open-addressing map: non-empty byte string -> uint32. Keys are copied into an arena.
class StrTable {
 public:
  void reserve(size_t n);
  const uint32_t* find(std::string_view key, uint64_t h) const;
  void insert(std::string_view key, uint64_t h, uint32_t value);  // key must not be present
  size_t size() const { return used_; }
  size_t arena_bytes() const { return arena_.size(); }
  void clear();

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t off = 0, len = 0;  // len == 0 marks an empty slot
    uint32_t value = 0;
  };
  void grow();
  std::vector<Slot> slots_;
  std::string arena_;
  size_t used_ = 0;
};

// Open-addressing map: (left id, right id) -> merged id.
class PairTable {
 public:
  void build(const std::vector<uint64_t>& keys, const std::vector<int>& values);
  int find(int a, int b) const {  // -1 when the pair does not merge
    uint64_t key = (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
    size_t i = (key * 0x9E3779B97F4A7C15ull) >> shift_;
    for (;;) {
      const Entry& e = slots_[i];
      if (e.value < 0) return -1;
      if (e.key == key) return e.value;
      i = (i + 1) & mask_;
    }
  }

 private:
  struct Entry {
    uint64_t key = 0;
    int value = -1;
  };
  std::vector<Entry> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
};

// GPT-2's printable stand-in for each byte (bytes_to_unicode): byte -> code point.
void byte_to_unicode(uint32_t out[256]);

}  // namespace tok

struct Tokenizer::Impl {
  uint64_t uid = 0;                 // distinguishes tokenizers in the per-thread caches
  std::vector<std::string> tokens;  // id -> raw bytes ("<|endoftext|>" text for the special token)
  int eot = -1;                     // id of <|endoftext|>
  tok::StrTable vocab;              // raw bytes -> id, ordinary tokens only
  tok::PairTable pairs;             // (a, b) -> id of bytes(a)+bytes(b), when that is a token
  int byte_token[256];              // single-byte tokens
  const pcre2_code* re = nullptr;  // shared, owned by a static in tokenizer_files.cpp
  bool jit = false;

  // Validates the token list (non-empty unique ordinary tokens, all 256 single bytes present, eot
  // is "<|endoftext|>"), builds the tables and compiles the pattern. `name` prefixes errors.
  static std::shared_ptr<Impl> build(std::vector<std::string> tokens, int eot, const std::string& name);
};

}  // namespace llm
