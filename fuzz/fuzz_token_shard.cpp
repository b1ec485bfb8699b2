// fuzz_token_shard — libFuzzer target for the token-shard readers (host/token_shard.*) and the trainers'
// DataLoader over a shard (host/data_loader.*: header/size checks, token-id checks, windows).
// Input: byte 0 is the mode, the rest is the shard file.
//   bit 0: 0 = read_token_shard_header + read_token_shard, 1 = DataLoader + a few next_batch calls
//   bit 1: vocabulary bound 50257 (GPT-2) instead of 100 (ids of the seeds are < 100, mutations go beyond)
//   bits 2-3: B - 1;  bits 4-6: T - 1
// Every outcome must be success or llm::Error; accepted tokens must match the header count / be < vocab.
// FUZZ_WRITE_SEEDS=<dir> writes valid small shards (written by write_token_shard) and exits.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "host/data_loader.h"
#include "host/error.h"
#include "host/token_shard.h"

static void write_seeds(const char* dir) {
  int k = 0;
  for (size_t n : {1, 17, 200}) {
    std::vector<uint16_t> t(n);
    for (size_t i = 0; i < n; i++) t[i] = static_cast<uint16_t>((i * 7 + 3) % 100);
    const std::string body =
        fuzz::written_bytes("shard.bin", [&](const std::string& path) { llm::write_token_shard(path, t); });
    for (uint8_t mode : {0x00, 0x01, 0x03, 0x15, 0x7d})
      fuzz::write_seed(dir, "seed_" + std::to_string(k++), mode, body);
  }
}

FUZZ_SEEDS_FROM_ENV(write_seeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::MemFile file;
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  file.set(data + 1, size - 1);
  const int vocab = (mode & 2) ? 50257 : 100;
  try {
    if (!(mode & 1)) {
      const size_t n = llm::read_token_shard_header(file.path());
      std::vector<uint16_t> t = llm::read_token_shard(file.path());
      if (t.size() != n || size - 1 != 1024 + 2 * n) __builtin_trap();
    } else {
      const int B = 1 + ((mode >> 2) & 3), T = 1 + ((mode >> 4) & 7);
      llm::DataLoader loader(file.path(), B, T, vocab);
      std::vector<int> in(B * T), tg(B * T);
      for (int step = 0; step < 4; step++) {
        loader.next_batch(in.data(), tg.data());
        for (int i = 0; i < B * T; i++)
          if (in[i] < 0 || in[i] >= vocab || tg[i] < 0 || tg[i] >= vocab) __builtin_trap();
      }
    }
  } catch (const llm::Error&) {
  }
  return 0;
}
