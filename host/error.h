// error.h — one exception type for every bad-input condition in host code.
// Programs catch it in main(), print "error: <what>" to stderr and exit with kExitBadInput (2).
#pragma once
#include <stdexcept>
#include <string>

namespace llm {

constexpr int kExitBadInput = 2;

struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// fail("file.bin: bad magic ", magic) — concatenates its arguments and throws llm::Error.
template <class... Args>
[[noreturn]] void fail(const Args&... args);

}  // namespace llm

#include <sstream>
template <class... Args>
[[noreturn]] void llm::fail(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw llm::Error(os.str());
}
