#include "host/train_state.h"

#include <cstdio>
#include <cstring>

#include "host/binary_io.h"
#include "host/crc32c.h"
#include "host/error.h"
#include "host/memory.h"
#include "host/weights_check.h"

namespace llm {

static constexpr int kSlots = 256;
static constexpr uint32_t kMaxFingerprint = 1 << 20;

static void put64(int32_t* h, int slot, uint64_t v) {
  uint32_t lo = static_cast<uint32_t>(v), hi = static_cast<uint32_t>(v >> 32);
  std::memcpy(&h[slot], &lo, 4);
  std::memcpy(&h[slot + 1], &hi, 4);
}

static uint64_t get64(const int32_t* h, int slot) {
  uint32_t lo, hi;
  std::memcpy(&lo, &h[slot], 4);
  std::memcpy(&hi, &h[slot + 1], 4);
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

void save_train_state(const std::string& path, const TrainState& s) {
  if (s.m.size() != s.v.size()) fail(path, ": internal error: AdamW m and v sizes differ");
  if (s.fingerprint.size() > kMaxFingerprint) fail(path, ": internal error: fingerprint too long");
  int32_t h[kSlots] = {};
  h[0] = kTrainStateMagic;
  h[1] = kTrainStateVersion;
  put64(h, 2, static_cast<uint64_t>(s.step));
  put64(h, 4, s.seed);
  put64(h, 6, s.m.size());
  put64(h, 8, static_cast<uint64_t>(s.loader.epoch));
  put64(h, 10, static_cast<uint64_t>(s.loader.shard));
  put64(h, 12, static_cast<uint64_t>(s.loader.window));
  h[14] = static_cast<int32_t>(s.fingerprint.size());
  if (s.settings.size() > kMaxFingerprint) fail(path, ": internal error: settings too long");
  h[15] = static_cast<int32_t>(s.settings.size());
  check_finite_array(path, "AdamW m", s.m.data(), s.m.size());
  check_finite_array(path, "AdamW v", s.v.data(), s.v.size());
  h[16] = 1;  // CRC-32C in slot 17: header (slot 17 = 0), fingerprint, settings, m, v
  uint32_t crc = crc32c(h, sizeof(h));
  crc = crc32c(s.fingerprint.data(), s.fingerprint.size(), crc);
  crc = crc32c(s.settings.data(), s.settings.size(), crc);
  crc = crc32c(s.m.data(), s.m.size() * 4, crc);
  crc = crc32c(s.v.data(), s.v.size() * 4, crc);
  std::memcpy(&h[17], &crc, 4);
  AtomicFile out(path);
  out.write(h, sizeof(h));
  out.write(s.fingerprint.data(), s.fingerprint.size());
  out.write(s.settings.data(), s.settings.size());
  out.write(s.m.data(), s.m.size() * 4);
  out.write(s.v.data(), s.v.size() * 4);
  out.commit();
}

namespace {
// Reads and checks the header; returns the settings length (0 for version 1).
int32_t read_header(InFile& f, int32_t* h) {
  const std::string& path = f.path();
  if (f.size() < kSlots * 4) fail(path, ": truncated (", f.size(), " bytes, smaller than the 1024-byte header)");
  f.read(h, kSlots * 4, "the header");
  if (h[0] != kTrainStateMagic)
    fail(path, ": bad magic ", h[0], " (expected ", kTrainStateMagic, "; not a training-state file)");
  if (h[1] != 1 && h[1] != 2) fail(path, ": unsupported training-state version ", h[1], " (expected 1 or 2)");
  const int32_t slen = h[1] >= 2 ? h[15] : 0;
  if (slen < 0 || static_cast<uint32_t>(slen) > kMaxFingerprint)
    fail(path, ": header settings length ", slen, " is out of range");
  if (h[14] < 0 || static_cast<uint32_t>(h[14]) > kMaxFingerprint)
    fail(path, ": header fingerprint length ", h[14], " is out of range");
  return slen;
}
}  // namespace

std::string read_train_state_settings(const std::string& path) {
  InFile f(path);
  int32_t h[kSlots];
  const int32_t slen = read_header(f, h);
  if (f.size() < kSlots * 4 + static_cast<uint64_t>(h[14]) + slen) fail(path, ": truncated (settings)");
  f.seek(kSlots * 4 + static_cast<uint64_t>(h[14]));
  std::string settings(slen, '\0');
  f.read(settings.data(), slen, "the saved settings");
  return settings;
}

TrainState load_train_state(const std::string& path, size_t num_parameters) {
  InFile f(path);
  int32_t h[kSlots];
  const int32_t slen = read_header(f, h);
  TrainState s;
  const int64_t step = static_cast<int64_t>(get64(h, 2));
  const uint64_t n = get64(h, 6);
  s.loader.epoch = static_cast<int64_t>(get64(h, 8));
  s.loader.shard = static_cast<int64_t>(get64(h, 10));
  s.loader.window = static_cast<int64_t>(get64(h, 12));
  const int32_t flen = h[14];
  if (step < 0 || step > (int64_t(1) << 40)) fail(path, ": header step ", step, " is out of range");
  if (s.loader.epoch < 0 || s.loader.shard < 0 || s.loader.window < 0)
    fail(path, ": negative data loader position in the header");
  if (flen < 0 || static_cast<uint32_t>(flen) > kMaxFingerprint)
    fail(path, ": header fingerprint length ", flen, " is out of range");
  const bool has_crc = h[1] >= 2 && h[16] == 1;
  if (h[1] >= 2 && h[16] != 0 && h[16] != 1) fail(path, ": header slot 16 (CRC-32C flag) = ", h[16], ", expected 0 or 1");
  if (h[1] >= 2 && !has_crc && h[17] != 0) fail(path, ": header slot 17 = ", h[17], " without the CRC-32C flag");
  uint32_t stored_crc = 0;
  if (has_crc) std::memcpy(&stored_crc, &h[17], 4);
  for (int i = h[1] >= 2 ? 18 : 15; i < kSlots; i++)
    if (h[i] != 0) fail(path, ": header slot ", i, " = ", h[i], ", expected 0 (unused)");
  if (n != num_parameters)
    fail(path, ": holds optimizer state for ", n, " parameters but the model has ", num_parameters);
  const uint64_t expected = kSlots * 4 + static_cast<uint64_t>(flen) + static_cast<uint64_t>(slen) + 8 * n;
  if (f.size() != expected)
    fail(path, ": file size ", f.size(), " bytes disagrees with the header (expected ", expected, " bytes); the file is ",
         f.size() < expected ? "truncated" : "oversized");
  s.step = step;
  s.seed = get64(h, 4);
  s.fingerprint.resize(flen);
  f.read(s.fingerprint.data(), flen, "the settings fingerprint");
  s.settings.resize(slen);
  f.read(s.settings.data(), slen, "the saved settings");
  check_memory(path, 8 * n, "the AdamW moments of " + std::to_string(n) + " parameters");
  s.m.resize(n);
  s.v.resize(n);
  f.read(s.m.data(), n * 4, "AdamW m");
  f.read(s.v.data(), n * 4, "AdamW v");
  if (has_crc) {
    h[17] = 0;
    uint32_t crc = crc32c(h, kSlots * 4);
    crc = crc32c(s.fingerprint.data(), s.fingerprint.size(), crc);
    crc = crc32c(s.settings.data(), s.settings.size(), crc);
    crc = crc32c(s.m.data(), n * 4, crc);
    crc = crc32c(s.v.data(), n * 4, crc);
    if (crc != stored_crc) {
      char msg[96];
      std::snprintf(msg, sizeof(msg), "CRC-32C mismatch (header 0x%08x, contents 0x%08x)", stored_crc, crc);
      fail(path, ": ", msg, ": the file is corrupted");
    }
  }
  check_finite_array(path, "AdamW m", s.m.data(), n);
  check_finite_array(path, "AdamW v", s.v.data(), n);
  return s;
}

}  // namespace llm
