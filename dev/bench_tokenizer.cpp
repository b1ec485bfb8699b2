// bench_tokenizer — encode throughput of the C++ GPT-2 tokenizer (speed is measured only in dev/).
//
//   build/bench_tokenizer [--reps N] FILE...
// For each file prints one line:
//   <file> bytes=<B> tokens=<N> fnv=<hash> cold1=<MB/s> warm1=<MB/s> par2=<MB/s>
// cold1: first encode with a freshly loaded tokenizer (empty piece cache), one thread;
// warm1: best of N further single-thread encodes (cache warm);
// par2:  best of N encode_parallel(…, 2) runs (chunks cut at safe split points; identical output,
//        checked). MB = 1e6 bytes. dev/bench_tokenizer.sh runs this next to tiktoken.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "host/error.h"
#include "host/token_shard.h"
#include "host/tokenizer.h"

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string fnv64(const std::vector<int>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int t : ids)
    for (int k = 0; k < 4; ++k) h = (h ^ ((uint32_t(t) >> (8 * k)) & 0xFF)) * 0x100000001b3ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}
}  // namespace

int main(int argc, char** argv) {
  int reps = 5;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else files.push_back(argv[i]);
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: bench_tokenizer [--reps N] FILE...\n");
    return 2;
  }
  try {
    for (const std::string& f : files) {
      std::string text = llm::read_file_bytes(f);
      llm::Tokenizer tok = llm::Tokenizer::from_default();  // fresh instance: empty cache
      const auto mode = llm::SpecialMode::kAsText;          // like tiktoken's encode_ordinary
      double t0 = now();
      std::vector<int> ids = tok.encode(text, mode);
      double cold = now() - t0, warm = 1e30, par = 1e30;
      for (int r = 0; r < reps; ++r) {
        t0 = now();
        std::vector<int> again = tok.encode(text, mode);
        warm = std::min(warm, now() - t0);
        if (again != ids) llm::fail("encode is not deterministic");
      }
      for (int r = 0; r < reps; ++r) {
        t0 = now();
        std::vector<int> p = tok.encode_parallel(text, mode, 2);
        par = std::min(par, now() - t0);
        if (p != ids) llm::fail("parallel encode differs from serial");
      }
      double mb = double(text.size()) / 1e6;
      std::printf("%s bytes=%zu tokens=%zu fnv=%s cold1=%.2f warm1=%.2f par2=%.2f\n", f.c_str(), text.size(),
                  ids.size(), fnv64(ids).c_str(), mb / cold, mb / warm, mb / par);
    }
  } catch (const llm::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 0;
}
