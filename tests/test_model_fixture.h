// test_model_fixture.h — reader for the "LLMF" tensor bundles written by scripts/gen_reference.py.
// Format (little-endian): u32 magic 0x464D4C4C, u32 version 1, u32 count, then per tensor: u32 name_len, name,
// u32 dtype (0 f32, 1 i32, 2 i64, 3 f64), u32 ndim, u64 dims[ndim], row-major data. Every read is bounds-checked.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "host/error.h"

namespace llmtest {

struct FixtureTensor {
  uint32_t dtype = 0;
  std::vector<uint64_t> dims;
  std::vector<char> bytes;
  size_t numel() const {
    size_t n = 1;
    for (auto d : dims) n *= d;
    return n;
  }
  template <class T> std::vector<T> as() const {
    std::vector<T> v(bytes.size() / sizeof(T));
    std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
    return v;
  }
};

class Fixture {
 public:
  explicit Fixture(const std::string& path) : path_(path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) llm::fail(path, ": cannot open (run scripts/gen_reference.py)");
    buf_.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (u32() != 0x464D4C4Cu) llm::fail(path, ": bad magic");
    if (u32() != 1) llm::fail(path, ": unsupported version");
    const uint32_t count = u32();
    for (uint32_t i = 0; i < count; i++) {
      const uint32_t len = u32();
      std::string name(take(len), len);
      FixtureTensor t;
      t.dtype = u32();
      if (t.dtype > 3) llm::fail(path, ": tensor ", name, " has unknown dtype ", t.dtype);
      const uint32_t ndim = u32();
      if (ndim > 8) llm::fail(path, ": tensor ", name, " has ", ndim, " dims");
      for (uint32_t d = 0; d < ndim; d++) {
        uint64_t v;
        std::memcpy(&v, take(8), 8);
        if (v > (1ull << 32)) llm::fail(path, ": tensor ", name, " dim too large");
        t.dims.push_back(v);
      }
      const size_t elem = (t.dtype == 0 || t.dtype == 1) ? 4 : 8;
      const size_t nbytes = t.numel() * elem;
      const char* p = take(nbytes);
      t.bytes.assign(p, p + nbytes);
      tensors_[name] = std::move(t);
    }
    if (pos_ != buf_.size()) llm::fail(path, ": trailing bytes");
  }
  const FixtureTensor& at(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) llm::fail(path_, ": no tensor ", name);
    return it->second;
  }
  std::vector<float> f32(const std::string& n) const { return checked<float>(n, 0); }
  std::vector<int32_t> i32(const std::string& n) const { return checked<int32_t>(n, 1); }
  std::vector<int64_t> i64(const std::string& n) const { return checked<int64_t>(n, 2); }
  std::vector<double> f64(const std::string& n) const { return checked<double>(n, 3); }

 private:
  template <class T> std::vector<T> checked(const std::string& n, uint32_t dtype) const {
    const auto& t = at(n);
    if (t.dtype != dtype) llm::fail(path_, ": tensor ", n, " has dtype ", t.dtype, ", expected ", dtype);
    return t.as<T>();
  }
  const char* take(size_t n) {
    if (n > buf_.size() - pos_) llm::fail(path_, ": truncated at byte ", pos_);
    const char* p = buf_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint32_t u32() {
    uint32_t v;
    std::memcpy(&v, take(4), 4);
    return v;
  }
  std::string path_;
  std::vector<char> buf_;
  size_t pos_ = 0;
  std::map<std::string, FixtureTensor> tensors_;
};

inline std::string fixture_path(const std::string& name) {
  return std::string(LLM_SOURCE_DIR) + "/tests/fixtures/model/" + name;
}

}  // namespace llmtest
