#include "host/memory.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "host/error.h"

namespace llm {

namespace {
// The first number in a file ("max" or missing: UINT64_MAX).
uint64_t read_number(const char* path) {
  std::ifstream f(path);
  std::string s;
  if (!(f >> s) || s == "max") return UINT64_MAX;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  return end && *end == '\0' ? static_cast<uint64_t>(v) : UINT64_MAX;
}
uint64_t limit_minus_usage(const char* limit_path, const char* usage_path) {
  const uint64_t limit = read_number(limit_path);
  if (limit == UINT64_MAX || limit >= (uint64_t(1) << 62)) return UINT64_MAX;  // v1 "no limit" is ~2^63
  const uint64_t usage = read_number(usage_path);
  if (usage == UINT64_MAX) return limit;
  return usage >= limit ? 0 : limit - usage;
}
}  // namespace

uint64_t available_memory_bytes() {
  uint64_t avail = UINT64_MAX;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kb) == 1) {
      avail = static_cast<uint64_t>(kb) * 1024;
      break;
    }
  }
  auto lower = [&avail](uint64_t v) {
    if (v < avail) avail = v;
  };
  lower(limit_minus_usage("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"));
  lower(limit_minus_usage("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"));
  if (const char* env = std::getenv("LLM_MEMORY_LIMIT"); env && *env) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 10);
    if (!end || *end != '\0') fail("LLM_MEMORY_LIMIT='", env, "' is not a number of bytes");
    lower(static_cast<uint64_t>(v));
  }
  return avail;
}

std::string format_gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

void check_memory(const std::string& source, uint64_t bytes, const std::string& purpose) {
  const uint64_t avail = available_memory_bytes();
  if (bytes > avail)
    fail(source, ": needs ", format_gib(bytes), " of memory for ", purpose, ", but only ", format_gib(avail),
         " are available (MemAvailable / cgroup limit)");
}

uint64_t activation_floats(const GPT2Config& c, int B, int T) {
  const uint64_t L = c.num_layers, C = c.channels, NH = c.num_heads, Vp = c.padded_vocab_size;
  const uint64_t BT = static_cast<uint64_t>(B) * T;
  // per layer: ln1, qkv (3C), atty, attproj, residual2, ln2, fch (4C), fch_gelu (4C), fcproj, residual3 = 18C per
  // token, 4 LayerNorm statistics per token, preatt + att (NH·T per token each)
  const uint64_t per_layer = BT * (18 * C + 4) + 2 * BT * NH * static_cast<uint64_t>(T);
  // encoded, lnf (C each), lnf statistics, logits + probs (Vp each), losses
  return L * per_layer + BT * (2 * C + 3 + 2 * Vp);
}

}  // namespace llm
