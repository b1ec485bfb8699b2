// fuzz_train_state — libFuzzer target for the training-state reader (host/train_state.*: header, fingerprint,
// settings, AdamW moments, CRC-32C, non-finite refusal) and for the saved-settings text it carries
// (apply_resume_settings, host/cli.*), as a resume reads them.
// Input: byte 0 is the mode, the rest is the file.
//   bit 0: recompute the CRC-32C (slot 17, when slot 16 = 1) after mutation, so the loader runs past the check
//   bit 1: the model's parameter count is the one the header claims (slots 6-7) instead of the seeds' 8
// Every outcome must be success or llm::Error; an accepted state must have n finite m and v values.
// FUZZ_WRITE_SEEDS=<dir> writes valid small state files (versions 1 and 2) and exits.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "host/cli.h"
#include "host/error.h"
#include "host/train_state.h"

static constexpr size_t kSeedParams = 8;

static void write_seeds(const char* dir) {
  llm::TrainState s;
  s.step = 12;
  s.seed = 42;
  s.loader.epoch = 1;
  s.loader.shard = 0;
  s.loader.window = 3;
  s.fingerprint = "model=d6\nbatch=4x64\nlr=0.0003\n";
  llm::TrainOptions o;
  o.given = {"--max-steps"};
  s.settings = llm::resume_settings_text(o);
  s.m.assign(kSeedParams, 0.25f);
  s.v.assign(kSeedParams, 0.0625f);
  const std::string v2 =
      fuzz::written_bytes("state.bin", [&](const std::string& path) { llm::save_train_state(path, s); });
  // version 1: no settings, no CRC (slots 15-17 zero), the settings bytes cut out
  std::string v1 = v2;
  const int32_t flen = fuzz::slot(v2, 14), slen = fuzz::slot(v2, 15);
  const int32_t one = 1, zero = 0;
  std::memcpy(&v1[4], &one, 4);
  for (int i = 15; i <= 17; i++) std::memcpy(&v1[4 * i], &zero, 4);
  v1.erase(1024 + flen, slen);
  int k = 0;
  for (uint8_t mode = 0; mode < 4; mode++) {
    fuzz::write_seed(dir, "seed_" + std::to_string(k++), mode, v2);
    fuzz::write_seed(dir, "seed_" + std::to_string(k++), mode, v1);
  }
}

FUZZ_SEEDS_FROM_ENV(write_seeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::MemFile file;
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (mode & 1) fuzz::patch_crc(&body, 16, 17);
  file.set(body.data(), body.size());
  size_t n = kSeedParams;
  if ((mode & 2) && body.size() >= 1024) {
    uint64_t claimed;
    std::memcpy(&claimed, body.data() + 24, 8);
    n = static_cast<size_t>(claimed);
  }
  try {
    const std::string settings = llm::read_train_state_settings(file.path());
    llm::TrainOptions o;
    if (mode & 4) o.given = {"--preset", "--max-steps"};
    llm::apply_resume_settings(&o, settings, file.path());
    // settings that load must validate or fail with llm::Error, and survive a save/load round trip
    try {
      llm::validate_train_options(o);
    } catch (const llm::Error&) {
    }
    const std::string again = llm::resume_settings_text(o);
    llm::TrainOptions o2;
    llm::apply_resume_settings(&o2, again, "round trip");
    if (llm::resume_settings_text(o2) != again) __builtin_trap();
  } catch (const llm::Error&) {
  }
  try {
    llm::TrainState s = llm::load_train_state(file.path(), n);
    if (s.m.size() != n || s.v.size() != n) __builtin_trap();
    for (size_t i = 0; i < n; i++)
      if (!std::isfinite(s.m[i]) || !std::isfinite(s.v[i])) __builtin_trap();
    if (s.step < 0 || s.loader.epoch < 0 || s.loader.shard < 0 || s.loader.window < 0) __builtin_trap();
  } catch (const llm::Error&) {
  }
  return 0;
}
